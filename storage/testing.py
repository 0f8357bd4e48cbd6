"""The `BlobStore` conformance suite, shipped with the package (as zarr ships `StoreTests`).

A backend's tests subclass `BlobStoreTests`, provide a `store` fixture that yields an empty
store, and implement the ground-truth hooks, which read and damage what the backend stored
*another way* (the file on disk, `get_object` on the bucket, `cat` on the daemon), so the
suite never checks a backend only against itself::

    class TestMyStore(BlobStoreTests):
        scheme = "my"

        @pytest.fixture
        def store(self, tmp_path):
            yield MyStore(tmp_path)

        def raw_read(self, store, blob_id): ...
        def raw_corrupt(self, store, blob_id, data): ...
        def raw_read_record(self, store, group, record_id): ...
        def raw_corrupt_record(self, store, group, record_id, data): ...
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
from typing import Any

import pytest
import xxhash

from storage.errors import (
    BlobCorrupted,
    BlobNotFound,
    InvalidBlobId,
    InvalidRecordGroup,
    StorageError,
    StoreClosed,
    StoreURIError,
)

PAYLOADS = [b"", b"x", bytes(range(256)) * 4, os.urandom(1 << 20)]
BAD_IDS = ["", "../etc/passwd", "A" * 32, "0" * 31, "0" * 33, "g" * 32, 12345, None]
GROUP = "iface/" + "ab" * 16


def xxh3_hex(data: bytes) -> str:
    """The expected id, computed here rather than by the code under test."""
    return xxhash.xxh3_128(data).hexdigest()


class FakeClock:
    """The project's one fake clock for tests: stands still until `advance` (or until `now`
    is set), picklable (unlike a lambda), so injected TTL, cooldown and breaker clocks never
    need a test to sleep. `delegation.testing` re-exports it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    @property
    def now_s(self) -> float:
        """`now`, in the units the storage tests name."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds`."""
        self.now += seconds


def read_pickled(pickled: bytes, blob_id: str, group: str, record_id: str) -> tuple[bytes, bytes]:
    """Unpickle a store and read one blob and one record through it (run in a child process)."""
    store = pickle.loads(pickled)
    try:
        return store.get(blob_id), store.get_record(group, record_id)
    finally:
        store.close()


class BlobStoreTests:
    """Conformance tests every `BlobStore` + `RecordStore` backend passes.

    A backend whose test double lives only in this process (moto's `mock_aws`) overrides
    `read_in_another_process` to run `read_pickled` here instead.
    """

    scheme: str = ""

    @pytest.fixture
    def store(self) -> Any:
        raise NotImplementedError("subclasses provide a `store` fixture yielding an empty store")

    def raw_read(self, store: Any, blob_id: str) -> bytes | None:
        """The bytes the backend holds for a blob, read without the store; None if absent."""
        raise NotImplementedError

    def raw_corrupt(self, store: Any, blob_id: str, data: bytes) -> None:
        """Replace a stored blob's bytes with `data`, without the store."""
        raise NotImplementedError

    def raw_read_record(self, store: Any, group: str, record_id: str) -> bytes | None:
        """A record's stored bytes, read without the store; None if absent."""
        raise NotImplementedError

    def raw_corrupt_record(self, store: Any, group: str, record_id: str, data: bytes) -> None:
        """Replace a stored record's bytes with `data`, without the store."""
        raise NotImplementedError

    def read_in_another_process(
        self, pickled: bytes, blob_id: str, group: str, record_id: str
    ) -> tuple[bytes, bytes]:
        """`read_pickled` in a fresh interpreter (spawned, as a Ray worker would be)."""
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            return pool.apply(read_pickled, (pickled, blob_id, group, record_id))

    # -- blobs --------------------------------------------------------------------------

    @pytest.mark.parametrize("size", [len(p) for p in PAYLOADS])
    def test_put_stores_exact_bytes_under_their_xxh3(self, store: Any, size: int) -> None:
        data = next(p for p in PAYLOADS if len(p) == size)
        blob_id = store.put(data)
        assert blob_id == xxh3_hex(data)
        assert self.raw_read(store, blob_id) == data
        assert store.get(blob_id) == data

    def test_put_is_idempotent(self, store: Any) -> None:
        first, second = store.put(b"same bytes"), store.put(b"same bytes")
        assert first == second
        assert list(store.iterate()).count(first) == 1
        assert self.raw_read(store, first) == b"same bytes"

    def test_put_accepts_bytes_like_and_rejects_the_rest(self, store: Any) -> None:
        assert store.put(bytearray(b"ba")) == xxh3_hex(b"ba")
        assert store.put(memoryview(b"mv")) == xxh3_hex(b"mv")
        with pytest.raises(TypeError):
            store.put("text is not bytes")
        assert set(store.iterate()) == {xxh3_hex(b"ba"), xxh3_hex(b"mv")}

    def test_get_missing_is_blob_not_found_and_key_error(self, store: Any) -> None:
        missing = xxh3_hex(b"never stored")
        with pytest.raises(BlobNotFound) as info:
            store.get(missing)
        assert isinstance(info.value, KeyError)
        assert info.value.blob_id == missing
        assert missing in str(info.value)

    @pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
    def test_malformed_ids_are_rejected(self, store: Any, bad: Any) -> None:
        for operation in (store.get, store.contains, store.delete):
            with pytest.raises(InvalidBlobId):
                operation(bad)

    def test_contains(self, store: Any) -> None:
        blob_id = store.put(b"present")
        assert store.contains(blob_id) is True
        assert store.contains(xxh3_hex(b"absent")) is False

    def test_delete_removes_the_stored_bytes(self, store: Any) -> None:
        keep, gone = store.put(b"keep"), store.put(b"gone")
        store.delete(gone)
        assert self.raw_read(store, gone) is None
        assert self.raw_read(store, keep) == b"keep"
        assert not store.contains(gone)
        with pytest.raises(BlobNotFound):
            store.get(gone)
        with pytest.raises(BlobNotFound):
            store.delete(gone)
        assert set(store.iterate()) == {keep}

    def test_iterate_lists_exactly_the_stored_blobs(self, store: Any) -> None:
        assert list(store.iterate()) == []
        ids = {store.put(f"blob {i}".encode()) for i in range(12)}
        assert set(store.iterate()) == ids
        assert len(list(store.iterate())) == 12

    def test_corrupted_bytes_raise_and_are_never_returned(self, store: Any) -> None:
        blob_id = store.put(b"original bytes")
        self.raw_corrupt(store, blob_id, b"tampered bytes")
        with pytest.raises(BlobCorrupted) as info:
            store.get(blob_id)
        assert info.value.blob_id == blob_id
        assert info.value.actual_id == xxh3_hex(b"tampered bytes")

    def test_put_repairs_a_corrupted_blob(self, store: Any) -> None:
        blob_id = store.put(b"original bytes")
        self.raw_corrupt(store, blob_id, b"tampered bytes")
        assert store.put(b"original bytes") == blob_id
        assert self.raw_read(store, blob_id) == b"original bytes"

    def test_pointer_resolves_to_the_blob(self, store: Any) -> None:
        blob_id = store.put(b"pointed at")
        pointer = store.pointer(blob_id)
        assert pointer.startswith(f"{self.scheme}://")
        assert store.fetch_pointer(pointer, blob_id) == b"pointed at"
        with pytest.raises(BlobCorrupted):
            store.fetch_pointer(pointer, xxh3_hex(b"something else"))
        with pytest.raises(BlobNotFound):
            store.pointer(xxh3_hex(b"absent"))
        with pytest.raises(StoreURIError):
            store.fetch_pointer("gopher://nowhere", xxh3_hex(b"absent"))

    def test_concurrent_puts_and_gets(self, store: Any) -> None:
        payloads = [f"payload {i % 5}".encode() * 100 for i in range(20)]
        errors: list[BaseException] = []

        def worker(data: bytes) -> None:
            try:
                assert store.get(store.put(data)) == data
            except (AssertionError, StorageError) as e:  # reported by the main thread
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(p,)) for p in payloads]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        assert set(store.iterate()) == {xxh3_hex(p) for p in payloads}
        for data in set(payloads):
            assert self.raw_read(store, xxh3_hex(data)) == data

    # -- records ------------------------------------------------------------------------

    def test_records_are_stored_one_object_each(self, store: Any) -> None:
        assert store.list_records(GROUP) == []
        ids = {store.put_record(GROUP, f"record {i}".encode()) for i in range(5)}
        assert ids == {xxh3_hex(f"record {i}".encode()) for i in range(5)}
        assert set(store.list_records(GROUP)) == ids
        for i in range(5):
            record_id = xxh3_hex(f"record {i}".encode())
            assert self.raw_read_record(store, GROUP, record_id) == f"record {i}".encode()
            assert store.get_record(GROUP, record_id) == f"record {i}".encode()

    def test_records_are_idempotent_and_grouped(self, store: Any) -> None:
        other = "source/" + "cd" * 16
        a = store.put_record(GROUP, b"a")
        assert store.put_record(GROUP, b"a") == a
        b = store.put_record(other, b"b")
        assert store.list_records(GROUP) == [a]
        assert store.list_records(other) == [b]
        assert list(store.iterate()) == []
        with pytest.raises(BlobNotFound):
            store.get_record(other, a)

    def test_corrupted_record_raises(self, store: Any) -> None:
        record_id = store.put_record(GROUP, b"signed record")
        self.raw_corrupt_record(store, GROUP, record_id, b"forged record")
        with pytest.raises(BlobCorrupted):
            store.get_record(GROUP, record_id)

    @pytest.mark.parametrize("group", ["iface", "iface/", "../x/00", "IFACE/00", "iface/xyz"])
    def test_malformed_groups_are_rejected(self, store: Any, group: str) -> None:
        with pytest.raises(InvalidRecordGroup):
            store.put_record(group, b"x")
        with pytest.raises(InvalidRecordGroup):
            store.list_records(group)

    # -- crossing processes and closing --------------------------------------------------

    def test_pickled_copy_shares_the_store(self, store: Any) -> None:
        before = store.put(b"written before pickling")
        record = store.put_record(GROUP, b"record before pickling")
        clone = pickle.loads(pickle.dumps(store))
        assert clone is not store
        assert clone.uri == store.uri
        assert clone.get(before) == b"written before pickling"
        assert clone.get_record(GROUP, record) == b"record before pickling"
        by_clone = clone.put(b"written by the copy")
        assert self.raw_read(store, by_clone) == b"written by the copy"
        assert store.get(by_clone) == b"written by the copy"
        clone.close()
        assert store.get(before) == b"written before pickling"  # closing a copy leaves this one

    def test_pickled_copy_reads_in_another_process(self, store: Any) -> None:
        blob_id = store.put(b"read me elsewhere")
        record_id = store.put_record(GROUP, b"and this record")
        got = self.read_in_another_process(pickle.dumps(store), blob_id, GROUP, record_id)
        assert got == (b"read me elsewhere", b"and this record")

    def test_close_is_idempotent_and_later_calls_raise(self, store: Any) -> None:
        blob_id = store.put(b"kept after close")
        record_id = store.put_record(GROUP, b"record kept after close")
        store.close()
        store.close()
        calls = [
            lambda: store.put(b"x"),
            lambda: store.get(blob_id),
            lambda: store.contains(blob_id),
            lambda: store.delete(blob_id),
            lambda: list(store.iterate()),
            lambda: store.pointer(blob_id),
            lambda: store.put_record(GROUP, b"y"),
            lambda: store.get_record(GROUP, record_id),
            lambda: store.list_records(GROUP),
            lambda: pickle.dumps(store),
        ]
        for call in calls:
            with pytest.raises(StoreClosed, match="closed") as info:
                call()
            assert isinstance(info.value, StorageError) and store.uri in str(info.value)
        assert self.raw_read(store, blob_id) == b"kept after close"  # closing deletes nothing
        assert self.raw_read_record(store, GROUP, record_id) == b"record kept after close"
