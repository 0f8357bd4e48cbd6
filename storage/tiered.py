"""`TieredStore`: a bounded local directory in front of a remote store.

Reads are served from the local directory when it has the blob, and otherwise fetched from
the remote and kept locally; writes go to both (write-through). The local directory holds at
most `max_bytes` of blobs, evicting the least recently used. When the remote fails, local hits
keep being served; the failure is counted in `health()`, logged, and raised to any caller whose
operation needed the remote. A blob written while the remote was down stays local, is never
evicted, and is uploaded by `sync()`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from storage.base import StoreBase
from storage.errors import BlobCorrupted, BlobNotFound, StorageUnavailable
from storage.local import LocalStore
from storage.outage import Outage
from storage.protocol import check_blob_id, is_blob_id

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class TierHealth:
    """A snapshot of a tiered store's counters.

    `remote_ok` is False from a failed remote call until the next successful one.
    """

    remote_ok: bool
    remote_errors: int
    last_remote_error: str | None
    local_hits: int
    remote_fetches: int
    evictions: int
    cached_bytes: int
    pending_uploads: int


class TieredStore(StoreBase):
    """A `BlobStore` and `RecordStore`: local LRU directory + remote store.

    Args:
        remote: the store of record (S3, IPFS, another directory...).
        cache_dir: the local directory (a `LocalStore` layout, plus `pending/`).
        max_bytes: bound on the bytes of cached blobs; least recently used are evicted.
        fsync: passed to the local `LocalStore`.

    Several processes may share `cache_dir`; each bounds what it has seen, so the directory
    can briefly exceed `max_bytes` by what the others added. Recency survives a restart only
    as write order (files' mtimes): hits are not written to disk, to keep them fast.

    A tiered store pickles when its remote does; the copy reopens the same `cache_dir` on the
    machine that unpickles it (a cache, so another machine's copy starts from what is there).
    """

    def __init__(
        self,
        remote: Any,
        cache_dir: str | os.PathLike[str],
        *,
        max_bytes: int = 256 << 20,
        fsync: bool = False,
    ) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.remote = remote
        self.local = LocalStore(cache_dir, fsync=fsync)
        self.uri = remote.uri
        self.max_bytes = max_bytes
        self._pending_dir = self.local.root / "pending"
        self._pending_dir.mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self._lru: OrderedDict[str, int] = OrderedDict()
        self._size = 0
        self._counts = {"errors": 0, "hits": 0, "fetches": 0, "evictions": 0}
        self._last_error: str | None = None
        self._remote_ok = True
        self._load_lru()

    def _init_kwargs(self) -> dict[str, Any]:
        return {
            "remote": self.remote,
            "cache_dir": self.local.root,
            "max_bytes": self.max_bytes,
            "fsync": self.local.fsync,
        }

    def _load_lru(self) -> None:
        entries = []
        for entry in os.scandir(self.local.blob_dir):
            if is_blob_id(entry.name):
                st = entry.stat()
                entries.append((st.st_mtime_ns, entry.name, st.st_size))
        for _, blob_id, size in sorted(entries):
            self._lru[blob_id] = size
            self._size += size

    @property
    def outage(self) -> Outage | None:
        """The remote's outage, or None (local hits are served either way)."""
        return getattr(self.remote, "outage", None)

    def health(self) -> TierHealth:
        """Counters and the remote's last known state."""
        with self._lock:
            return TierHealth(
                remote_ok=self._remote_ok,
                remote_errors=self._counts["errors"],
                last_remote_error=self._last_error,
                local_hits=self._counts["hits"],
                remote_fetches=self._counts["fetches"],
                evictions=self._counts["evictions"],
                cached_bytes=self._size,
                pending_uploads=len(self.pending()),
            )

    def _remote(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """Call the remote, recording success or failure before re-raising."""
        try:
            result = fn(*args)
        except StorageUnavailable as e:
            with self._lock:
                self._counts["errors"] += 1
                self._last_error = str(e)
                self._remote_ok = False
            log.warning("tiered store: remote %s failed during %s: %s", self.uri, what, e)
            raise
        self._remote_ok = True
        return result

    # -- the local LRU ------------------------------------------------------------------

    def _touch(self, blob_id: str, size: int) -> None:
        with self._lock:
            if blob_id in self._lru:
                self._lru.move_to_end(blob_id)
                return
            self._lru[blob_id] = size
            self._size += size
        self._evict()

    def _evict(self) -> None:
        pending = set(self.pending())
        with self._lock:
            victims = []
            for blob_id, size in list(self._lru.items()):
                if self._size <= self.max_bytes:
                    break
                if blob_id not in pending:
                    del self._lru[blob_id]
                    self._size -= size
                    victims.append(blob_id)
            self._counts["evictions"] += len(victims)
        for blob_id in victims:
            self._drop_local(blob_id)

    def _drop_local(self, blob_id: str) -> None:
        try:
            self.local.delete(blob_id)
        except BlobNotFound:
            pass  # another process evicted it first

    def _forget(self, blob_id: str) -> None:
        with self._lock:
            size = self._lru.pop(blob_id, None)
            if size is not None:
                self._size -= size

    def _local_get(self, blob_id: str) -> bytes | None:
        try:
            data = self.local.get(blob_id)
        except BlobNotFound:
            return None
        except BlobCorrupted as e:  # a damaged cache copy is dropped and refetched
            log.warning("tiered store: dropping corrupted cached copy: %s", e)
            self._forget(blob_id)
            self._drop_local(blob_id)
            return None
        with self._lock:
            self._counts["hits"] += 1
            if blob_id in self._lru:
                self._lru.move_to_end(blob_id)
                return data
        self._touch(blob_id, len(data))
        return data

    def _cache(self, data: bytes) -> str:
        blob_id = self.local.put(data)
        self._touch(blob_id, len(data))
        return blob_id

    # -- pending uploads ----------------------------------------------------------------

    def pending(self) -> list[str]:
        """Names of blobs and records written locally that the remote has not acknowledged."""
        return sorted(os.listdir(self._pending_dir))

    def _mark_pending(self, name: str) -> None:
        (self._pending_dir / name).touch()

    def sync(self) -> int:
        """Upload every pending blob and record to the remote; return how many were sent.

        Raises:
            StorageUnavailable: the remote is still down (what was sent stays sent).
        """
        self._check_open()
        sent = 0
        for name in self.pending():
            if is_blob_id(name):
                self._remote("sync", self.remote.put, self.local.get(name))
            else:
                group, record_id = _pending_record(name)
                data = self.local.get_record(group, record_id)
                self._remote("sync", self.remote.put_record, group, data)
            (self._pending_dir / name).unlink(missing_ok=True)
            sent += 1
        return sent

    # -- BlobStore ----------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        self._check_open()
        blob_id = self._cache(data)
        try:
            self._remote("put", self.remote.put, data)
        except StorageUnavailable as e:
            self._mark_pending(blob_id)
            raise StorageUnavailable(self.uri, f"{e.reason} (kept locally, pending sync)") from e
        return blob_id

    def get(self, blob_id: str) -> bytes:
        self._check_open()
        data = self._local_get(check_blob_id(blob_id))
        if data is None:
            data = self._remote("get", self.remote.get, blob_id)
            with self._lock:
                self._counts["fetches"] += 1
            self._cache(data)
        return data

    def contains(self, blob_id: str) -> bool:
        self._check_open()
        if self.local.contains(blob_id):
            return True
        return self._remote("contains", self.remote.contains, blob_id)

    def delete(self, blob_id: str) -> None:
        self._check_open()
        local = self.local.contains(blob_id)
        if local:
            self._forget(blob_id)
            self._drop_local(blob_id)
            (self._pending_dir / blob_id).unlink(missing_ok=True)
        try:
            self._remote("delete", self.remote.delete, blob_id)
        except BlobNotFound:
            if not local:
                raise

    def iterate(self) -> Iterator[str]:
        """The remote's blobs (the store of record) plus any pending local ones."""
        self._check_open()
        ids = set(self._remote("iterate", lambda: list(self.remote.iterate())))
        return iter(ids | {name for name in self.pending() if is_blob_id(name)})

    def pointer(self, blob_id: str) -> str:
        self._check_open()
        return self._remote("pointer", self.remote.pointer, blob_id)

    def fetch_pointer(self, pointer: str, blob_id: str) -> bytes:
        self._check_open()
        data = self._local_get(check_blob_id(blob_id))
        if data is None:
            data = self._remote("fetch", self.remote.fetch_pointer, pointer, blob_id)
            self._cache(data)
        return data

    # -- RecordStore --------------------------------------------------------------------

    def put_record(self, group: str, data: bytes) -> str:
        self._check_open()
        record_id = self.local.put_record(group, data)
        try:
            self._remote("put_record", self.remote.put_record, group, data)
        except StorageUnavailable as e:
            self._mark_pending(f"{group.replace('/', '.')}.{record_id}")
            raise StorageUnavailable(self.uri, f"{e.reason} (kept locally, pending sync)") from e
        return record_id

    def get_record(self, group: str, record_id: str) -> bytes:
        self._check_open()
        try:
            return self.local.get_record(group, record_id)
        except (BlobNotFound, BlobCorrupted):
            data = self._remote("get_record", self.remote.get_record, group, record_id)
            self.local.put_record(group, data)
            return data

    def list_records(self, group: str) -> list[str]:
        """Records on the remote and in the local directory.

        When the remote is down this serves the local ones: the failure is counted in
        `health()` and logged, and the lookup proceeds with what is known here.
        """
        self._check_open()
        local = set(self.local.list_records(group))
        try:
            remote = self._remote("list_records", self.remote.list_records, group)
        except StorageUnavailable:
            return sorted(local)
        return sorted(local.union(remote))

    def close(self) -> None:
        """Close the remote store and the local tier. Idempotent."""
        if not self._closed:
            self._closed = True
            self.local.close()
            self.remote.close()


def _pending_record(name: str) -> tuple[str, str]:
    namespace, group_hash, record_id = name.split(".")
    return f"{namespace}/{group_hash}", record_id
