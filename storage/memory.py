"""`MemoryStore`: blobs in a dict, for tests and single-process experiments."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from storage.errors import BlobNotFound, StoreURIError
from storage.protocol import as_bytes, blob_id_of, check_blob_id, check_group, verified

_NAMED: dict[str, MemoryStore] = {}
_NAMED_LOCK = threading.Lock()


class MemoryStore:
    """A `BlobStore` and `RecordStore` held in process memory.

    Args:
        name: a label used in pointers (`memory://<name>/<id>`) and error messages.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.uri = f"memory://{name}"
        self.blobs: dict[str, bytes] = {}
        self.records: dict[str, dict[str, bytes]] = {}
        self._lock = threading.Lock()

    def put(self, data: bytes) -> str:
        data = as_bytes(data)
        blob_id = blob_id_of(data)
        with self._lock:
            self.blobs[blob_id] = data  # also repairs a damaged copy
        return blob_id

    def get(self, blob_id: str) -> bytes:
        check_blob_id(blob_id)
        try:
            data = self.blobs[blob_id]
        except KeyError:
            raise BlobNotFound(blob_id, self.uri) from None
        return verified(blob_id, data, self.uri)

    def contains(self, blob_id: str) -> bool:
        return check_blob_id(blob_id) in self.blobs

    def delete(self, blob_id: str) -> None:
        check_blob_id(blob_id)
        with self._lock:
            if self.blobs.pop(blob_id, None) is None:
                raise BlobNotFound(blob_id, self.uri)

    def iterate(self) -> Iterator[str]:
        with self._lock:
            ids = list(self.blobs)
        return iter(ids)

    def pointer(self, blob_id: str) -> str:
        if not self.contains(blob_id):
            raise BlobNotFound(blob_id, self.uri)
        return f"{self.uri}/{blob_id}"

    def fetch_pointer(self, pointer: str, blob_id: str) -> bytes:
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
        data = as_bytes(data)
        record_id = blob_id_of(data)
        with self._lock:
            self.records.setdefault(check_group(group), {})[record_id] = data
        return record_id

    def get_record(self, group: str, record_id: str) -> bytes:
        check_blob_id(record_id)
        try:
            data = self.records[check_group(group)][record_id]
        except KeyError:
            raise BlobNotFound(f"{group}/{record_id}", self.uri) from None
        return verified(record_id, data, self.uri)

    def list_records(self, group: str) -> list[str]:
        with self._lock:
            return list(self.records.get(check_group(group), {}))

    def close(self) -> None:
        """Nothing to release: the contents stay for other holders of a named store."""


def open_memory(name: str = "") -> MemoryStore:
    """Return a fresh store for an empty name, else the process-wide store of that name."""
    if not name:
        return MemoryStore()
    with _NAMED_LOCK:
        if name not in _NAMED:
            _NAMED[name] = MemoryStore(name)
        return _NAMED[name]
