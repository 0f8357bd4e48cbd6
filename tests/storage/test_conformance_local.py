"""The conformance suite against the in-process backends: memory, local directory, tiered."""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path
from typing import Any

import pytest

from storage import LocalStore, MemoryStore, TieredStore
from storage.memory import open_memory
from storage.testing import BlobStoreTests


class TestMemoryStore(BlobStoreTests):
    scheme = "memory"

    @pytest.fixture
    def store(self) -> Any:
        return open_memory(f"conformance-{uuid.uuid4().hex}")

    def raw_read(self, store: MemoryStore, blob_id: str) -> bytes | None:
        return store.blobs.get(blob_id)

    def raw_corrupt(self, store: MemoryStore, blob_id: str, data: bytes) -> None:
        store.blobs[blob_id] = data

    def raw_read_record(self, store: MemoryStore, group: str, record_id: str) -> bytes | None:
        return store.records.get(group, {}).get(record_id)

    def raw_corrupt_record(self, store: MemoryStore, group: str, rid: str, data: bytes) -> None:
        store.records[group][rid] = data

    def test_unnamed_store_pickles_as_a_copy(self) -> None:
        store = MemoryStore()
        kept = store.put(b"copied")
        clone = pickle.loads(pickle.dumps(store))
        assert clone.get(kept) == b"copied"
        added = clone.put(b"only in the copy")
        assert not store.contains(added)

    def test_handles_on_a_named_store_close_separately(self) -> None:
        name = f"handles-{uuid.uuid4().hex}"
        first, second = open_memory(name), open_memory(name)
        blob_id = first.put(b"shared")
        first.close()
        assert second.get(blob_id) == b"shared"


class TestLocalStore(BlobStoreTests):
    """Ground truth: the plain files on disk, read with `Path.read_bytes`."""

    scheme = "file"

    @pytest.fixture
    def store(self, tmp_path: Path) -> Any:
        return LocalStore(tmp_path / "store")

    def raw_read(self, store: LocalStore, blob_id: str) -> bytes | None:
        path = store.root / "blobs" / blob_id
        return path.read_bytes() if path.exists() else None

    def raw_corrupt(self, store: LocalStore, blob_id: str, data: bytes) -> None:
        (store.root / "blobs" / blob_id).write_bytes(data)

    def raw_read_record(self, store: LocalStore, group: str, record_id: str) -> bytes | None:
        path = store.root / "records" / group / record_id
        return path.read_bytes() if path.exists() else None

    def raw_corrupt_record(self, store: LocalStore, group: str, rid: str, data: bytes) -> None:
        (store.root / "records" / group / rid).write_bytes(data)


class TestTieredStore(BlobStoreTests):
    """A local tier over a local remote. Ground truth: the remote's files on disk; corrupting
    damages both copies, since a good cached copy is rightly served."""

    scheme = "file"

    @pytest.fixture
    def store(self, tmp_path: Path) -> Any:
        return TieredStore(LocalStore(tmp_path / "remote"), tmp_path / "cache", max_bytes=4 << 20)

    def raw_read(self, store: TieredStore, blob_id: str) -> bytes | None:
        path = store.remote.root / "blobs" / blob_id
        return path.read_bytes() if path.exists() else None

    def raw_corrupt(self, store: TieredStore, blob_id: str, data: bytes) -> None:
        for root in (store.remote.root, store.local.root):
            path = root / "blobs" / blob_id
            if path.exists():
                path.write_bytes(data)

    def raw_read_record(self, store: TieredStore, group: str, record_id: str) -> bytes | None:
        path = store.remote.root / "records" / group / record_id
        return path.read_bytes() if path.exists() else None

    def raw_corrupt_record(self, store: TieredStore, group: str, rid: str, data: bytes) -> None:
        for root in (store.remote.root, store.local.root):
            (root / "records" / group / rid).write_bytes(data)
