"""`LocalStore`: one plain file per blob in a directory, written atomically.

Layout under the root directory (an operator can inspect it with ordinary tools):

    blobs/<blob id>                       the blob's bytes, nothing else
    records/<namespace>/<hex>/<record id> one L4 index record per file

Writes go to a temporary file in the same directory and are renamed into place, so a reader
never sees a partial blob and several processes may write the same blob at once: the last
rename wins and every candidate holds the same bytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from storage.base import StoreBase
from storage.errors import BlobNotFound, StorageUnavailable
from storage.fsutil import atomic_write
from storage.protocol import (
    as_bytes,
    blob_id_of,
    check_blob_id,
    check_group,
    is_blob_id,
    verified,
)
from storage.uris import parse_file_uri


def read_verified(path: Path, blob_id: str, store: str) -> bytes:
    """Read a blob file and verify it; a missing file is `BlobNotFound`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BlobNotFound(blob_id, store) from None
    except OSError as e:
        raise StorageUnavailable(store, f"cannot read {path}: {e}") from e
    return verified(blob_id, data, store)


class LocalStore(StoreBase):
    """A `BlobStore` and `RecordStore` in a local directory (the embedded default).

    Args:
        root: the directory; created with its parents if missing.
        fsync: flush each new file to disk before renaming it into place.
    """

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root).absolute()
        self.uri = self.root.as_uri()
        self.fsync = fsync
        self.blob_dir = self.root / "blobs"
        self.record_dir = self.root / "records"
        try:
            self.blob_dir.mkdir(parents=True, exist_ok=True)
            self.record_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageUnavailable(self.uri, f"cannot create {self.root}: {e}") from e

    def _init_kwargs(self) -> dict[str, Any]:
        return {"root": self.root, "fsync": self.fsync}

    @property
    def outage(self) -> None:
        """Never latched down: a local directory that fails reports each failure itself."""
        return None

    def blob_path(self, blob_id: str) -> Path:
        """The file that holds (or would hold) a blob."""
        self._check_open()
        return self.blob_dir / check_blob_id(blob_id)

    def put(self, data: bytes) -> str:
        self._check_open()
        data = as_bytes(data)
        blob_id = blob_id_of(data)
        self._write_once(self.blob_dir / blob_id, blob_id, data)
        return blob_id

    def _write_once(self, path: Path, blob_id: str, data: bytes) -> None:
        """Write unless a correct copy is already there (a damaged copy is replaced)."""
        try:
            if path.is_file() and blob_id_of(path.read_bytes()) == blob_id:
                return
            atomic_write(path, data, fsync=self.fsync)
        except OSError as e:
            raise StorageUnavailable(self.uri, f"cannot write {path}: {e}") from e

    def get(self, blob_id: str) -> bytes:
        return read_verified(self.blob_path(blob_id), blob_id, self.uri)

    def contains(self, blob_id: str) -> bool:
        return self.blob_path(blob_id).is_file()

    def delete(self, blob_id: str) -> None:
        try:
            self.blob_path(blob_id).unlink()
        except FileNotFoundError:
            raise BlobNotFound(blob_id, self.uri) from None
        except OSError as e:
            raise StorageUnavailable(self.uri, f"cannot delete {blob_id}: {e}") from e

    def iterate(self) -> Iterator[str]:
        self._check_open()
        try:
            names = [entry.name for entry in os.scandir(self.blob_dir)]
        except OSError as e:
            raise StorageUnavailable(self.uri, f"cannot list {self.blob_dir}: {e}") from e
        return (name for name in names if is_blob_id(name))

    def pointer(self, blob_id: str) -> str:
        path = self.blob_path(blob_id)
        if not path.is_file():
            raise BlobNotFound(blob_id, self.uri)
        return path.as_uri()

    def fetch_pointer(self, pointer: str, blob_id: str) -> bytes:
        self._check_open()
        check_blob_id(blob_id)
        return read_verified(parse_file_uri(pointer), blob_id, pointer)

    def _group_dir(self, group: str) -> Path:
        self._check_open()
        return self.record_dir / check_group(group)

    def put_record(self, group: str, data: bytes) -> str:
        data = as_bytes(data)
        record_id = blob_id_of(data)
        self._write_once(self._group_dir(group) / record_id, record_id, data)
        return record_id

    def get_record(self, group: str, record_id: str) -> bytes:
        path = self._group_dir(group) / check_blob_id(record_id)
        return read_verified(path, record_id, self.uri)

    def list_records(self, group: str) -> list[str]:
        try:
            names = os.listdir(self._group_dir(group))
        except FileNotFoundError:
            return []
        except OSError as e:
            raise StorageUnavailable(self.uri, f"cannot list records of {group}: {e}") from e
        return [name for name in names if is_blob_id(name)]

    def close(self) -> None:
        """Refuse later calls (every operation opens and closes its own files)."""
        self._closed = True
