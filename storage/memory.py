"""`MemoryStore`: blobs in a dict, for tests and single-process experiments."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from storage.base import StoreBase
from storage.errors import BlobNotFound, StoreURIError
from storage.protocol import as_bytes, blob_id_of, check_blob_id, check_group, verified


class _Contents:
    """What a memory store holds; every handle on one named store shares one `_Contents`."""

    def __init__(
        self,
        blobs: dict[str, bytes] | None = None,
        records: dict[str, dict[str, bytes]] | None = None,
    ) -> None:
        self.blobs: dict[str, bytes] = blobs or {}
        self.records: dict[str, dict[str, bytes]] = records or {}
        self.lock = threading.Lock()

    def snapshot(self) -> tuple[dict[str, bytes], dict[str, dict[str, bytes]]]:
        with self.lock:
            return dict(self.blobs), {g: dict(r) for g, r in self.records.items()}


_NAMED: dict[str, _Contents] = {}
_NAMED_LOCK = threading.Lock()


class MemoryStore(StoreBase):
    """A `BlobStore` and `RecordStore` held in process memory.

    Args:
        name: a label used in pointers (`memory://<name>/<id>`) and error messages.

    `open_memory(name)` gives handles that share one named store in this process. A store
    pickles with its contents: unpickled in a process that has a named store of that name, it
    is a handle on it; otherwise a new store holding what the original held when pickled.
    """

    def __init__(self, name: str = "", *, _contents: _Contents | None = None) -> None:
        self.name = name
        self.uri = f"memory://{name}"
        self._contents = _contents or _Contents()
        self.blobs = self._contents.blobs
        self.records = self._contents.records
        self._lock = self._contents.lock

    def __reduce__(self) -> tuple[Any, ...]:
        self._check_open()
        blobs, records = self._contents.snapshot()
        named = any(contents is self._contents for contents in _NAMED.values())
        return _unpickle, (self.name, named, blobs, records)

    def put(self, data: bytes) -> str:
        self._check_open()
        data = as_bytes(data)
        blob_id = blob_id_of(data)
        with self._lock:
            self.blobs[blob_id] = data  # also repairs a damaged copy
        return blob_id

    def get(self, blob_id: str) -> bytes:
        self._check_open()
        check_blob_id(blob_id)
        try:
            data = self.blobs[blob_id]
        except KeyError:
            raise BlobNotFound(blob_id, self.uri) from None
        return verified(blob_id, data, self.uri)

    def contains(self, blob_id: str) -> bool:
        self._check_open()
        return check_blob_id(blob_id) in self.blobs

    def delete(self, blob_id: str) -> None:
        self._check_open()
        check_blob_id(blob_id)
        with self._lock:
            if self.blobs.pop(blob_id, None) is None:
                raise BlobNotFound(blob_id, self.uri)

    def iterate(self) -> Iterator[str]:
        self._check_open()
        with self._lock:
            ids = list(self.blobs)
        return iter(ids)

    def pointer(self, blob_id: str) -> str:
        if not self.contains(blob_id):
            raise BlobNotFound(blob_id, self.uri)
        return f"{self.uri}/{blob_id}"

    def fetch_pointer(self, pointer: str, blob_id: str) -> bytes:
        self._check_open()
        check_blob_id(blob_id)
        target = pointer.removeprefix(f"{self.uri}/")
        if target == pointer:
            raise StoreURIError(pointer, f"not a pointer into {self.uri}")
        try:
            data = self.blobs[target]
        except KeyError:
            raise BlobNotFound(blob_id, pointer) from None
        return verified(blob_id, data, pointer)

    def put_record(self, group: str, data: bytes) -> str:
        self._check_open()
        data = as_bytes(data)
        record_id = blob_id_of(data)
        with self._lock:
            self.records.setdefault(check_group(group), {})[record_id] = data
        return record_id

    def get_record(self, group: str, record_id: str) -> bytes:
        self._check_open()
        check_blob_id(record_id)
        try:
            data = self.records[check_group(group)][record_id]
        except KeyError:
            raise BlobNotFound(f"{group}/{record_id}", self.uri) from None
        return verified(record_id, data, self.uri)

    def list_records(self, group: str) -> list[str]:
        self._check_open()
        with self._lock:
            return list(self.records.get(check_group(group), {}))

    @property
    def outage(self) -> None:
        """Never down: process memory cannot be unreachable."""
        return None

    def close(self) -> None:
        """Close this handle; the contents stay for other handles on a named store."""
        self._closed = True


def open_memory(name: str = "") -> MemoryStore:
    """A fresh store for an empty name, else a handle on the process-wide store of that name."""
    if not name:
        return MemoryStore()
    with _NAMED_LOCK:
        contents = _NAMED.setdefault(name, _Contents())
    return MemoryStore(name, _contents=contents)


def _unpickle(
    name: str, named: bool, blobs: dict[str, bytes], records: dict[str, dict[str, bytes]]
) -> MemoryStore:
    if not named:
        return MemoryStore(name, _contents=_Contents(blobs, records))
    with _NAMED_LOCK:
        contents = _NAMED.get(name)
        if contents is None:
            contents = _NAMED[name] = _Contents(blobs, records)
    return MemoryStore(name, _contents=contents)
