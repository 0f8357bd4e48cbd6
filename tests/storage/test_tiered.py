"""The tiered store: bounded LRU local directory, write-through, and a remote that fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage import LocalStore, MemoryStore, StorageUnavailable, TieredStore


class FlakyStore(MemoryStore):
    """A memory store whose every call fails while `down` is set (as a stopped server)."""

    down = False

    def __getattribute__(self, name: str):
        attr = object.__getattribute__(self, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def call(*args, **kwargs):
            if object.__getattribute__(self, "down"):
                raise StorageUnavailable(self.uri, "connection refused")
            return attr(*args, **kwargs)

        return call


def blob(i: int, size: int = 1000) -> bytes:
    return bytes([i % 256]) * size


@pytest.fixture
def remote() -> FlakyStore:
    return FlakyStore("remote")


def cached_files(tier: TieredStore) -> set[str]:
    return {p.name for p in (tier.local.root / "blobs").iterdir() if not p.name.startswith(".")}


def test_local_directory_stays_under_max_bytes_evicting_lru(remote, tmp_path: Path) -> None:
    tier = TieredStore(remote, tmp_path, max_bytes=3000)
    ids = [tier.put(blob(i)) for i in range(3)]
    tier.get(ids[0])  # 0 is now the most recently used; 1 is the least
    new = tier.put(blob(3))
    assert cached_files(tier) == {ids[0], ids[2], new}
    assert sum(p.stat().st_size for p in (tmp_path / "blobs").iterdir()) <= 3000
    assert tier.health().evictions == 1
    assert set(remote.blobs) == {*ids, new}  # write-through: the remote has everything
    assert tier.get(ids[1]) == blob(1)  # read-through refills the evicted one
    assert ids[1] in cached_files(tier)
    assert tier.health().remote_fetches == 1


def test_lru_order_survives_a_restart_as_write_order(remote, tmp_path: Path) -> None:
    tier = TieredStore(remote, tmp_path, max_bytes=3000)
    ids = [tier.put(blob(i)) for i in range(3)]
    for offset, blob_id in enumerate(ids):  # make write order unambiguous on coarse clocks
        os.utime(tmp_path / "blobs" / blob_id, ns=(10**18 + offset, 10**18 + offset))
    reopened = TieredStore(remote, tmp_path, max_bytes=3000)
    assert reopened.health().cached_bytes == 3000
    reopened.put(blob(9))
    assert ids[0] not in cached_files(reopened)


def test_remote_down_serves_local_hits_and_reports(remote, tmp_path: Path) -> None:
    tier = TieredStore(remote, tmp_path, max_bytes=10_000)
    cached = tier.put(blob(1))
    uncached = remote.put(blob(2))
    remote.down = True
    assert tier.get(cached) == blob(1)
    assert tier.contains(cached)
    with pytest.raises(StorageUnavailable, match="connection refused"):
        tier.get(uncached)
    health = tier.health()
    assert not health.remote_ok and health.remote_errors == 1
    assert "connection refused" in health.last_remote_error
    assert health.local_hits == 1
    remote.down = False
    assert tier.get(uncached) == blob(2)
    assert tier.health().remote_ok


def test_put_while_remote_down_is_kept_pinned_and_synced(remote, tmp_path: Path) -> None:
    tier = TieredStore(remote, tmp_path, max_bytes=1500)
    remote.down = True
    with pytest.raises(StorageUnavailable, match="pending sync"):
        pending = tier.put(blob(7))
    pending = next(iter(cached_files(tier)))
    with pytest.raises(StorageUnavailable):
        tier.put_record("iface/" + "a" * 32, b"record")
    assert len(tier.pending()) == 2
    remote.down = False
    for i in range(5):  # pressure on the bound: the pending blob must not be evicted
        tier.put(blob(10 + i))
    assert pending in cached_files(tier)
    assert tier.sync() == 2
    assert tier.pending() == []
    assert remote.get(pending) == blob(7)
    assert remote.list_records("iface/" + "a" * 32) != []
    tier.put(blob(99))
    assert pending not in cached_files(tier)  # evictable again once uploaded


def test_records_listed_from_local_when_remote_down(remote, tmp_path: Path) -> None:
    tier = TieredStore(remote, tmp_path)
    group = "iface/" + "b" * 32
    mine = tier.put_record(group, b"seen here")
    theirs = remote.put_record(group, b"published elsewhere")
    assert set(tier.list_records(group)) == {mine, theirs}
    remote.down = True
    assert tier.list_records(group) == [mine]
    assert tier.health().remote_errors == 1


def test_corrupted_cached_copy_is_dropped_and_refetched(remote, tmp_path: Path) -> None:
    tier = TieredStore(remote, tmp_path)
    blob_id = tier.put(b"good bytes")
    (tmp_path / "blobs" / blob_id).write_bytes(b"rotten")
    assert tier.get(blob_id) == b"good bytes"
    assert (tmp_path / "blobs" / blob_id).read_bytes() == b"good bytes"


def test_tier_over_a_real_directory_remote(tmp_path: Path) -> None:
    tier = TieredStore(LocalStore(tmp_path / "remote"), tmp_path / "cache", max_bytes=0)
    blob_id = tier.put(b"not cached at all")
    assert cached_files(tier) == set()
    assert tier.get(blob_id) == b"not cached at all"


def test_negative_bound_is_refused(remote, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        TieredStore(remote, tmp_path, max_bytes=-1)
