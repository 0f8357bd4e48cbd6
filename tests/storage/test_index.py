"""The L4 index: publish, newest trusted wins, pins, and every kind of refusal is a miss."""

from __future__ import annotations

import hashlib
import threading
from itertools import count
from pathlib import Path

import pytest
import xxhash
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from storage import (
    IndexArgumentError,
    IndexRecord,
    KeyRing,
    L4Index,
    LocalStore,
    MemoryStore,
    MissReason,
    StorageError,
    key_id_of,
    open_l4,
    open_store,
)

IFACE = xxhash.xxh3_128_hexdigest(b"interface: (defn add [a b])")
SOURCE = xxhash.xxh3_128_hexdigest(b"source v1")
SOURCE2 = xxhash.xxh3_128_hexdigest(b"source v2")


def fake_clock(start: float = 1_700_000_000.0) -> object:
    ticks = count()
    return lambda: start + next(ticks)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore("index")


@pytest.fixture
def index(store: MemoryStore) -> L4Index:
    return L4Index(store, clock=fake_clock())


def test_publish_then_lookup_by_interface_and_source(index: L4Index, store: MemoryStore) -> None:
    record = index.publish(IFACE, SOURCE, b"bytecode v1")
    assert record.blob_id == xxhash.xxh3_128_hexdigest(b"bytecode v1")
    assert record.sha256 == hashlib.sha256(b"bytecode v1").hexdigest()
    assert record.size == len(b"bytecode v1")
    assert record.key_id == key_id_of(index.signing_key.public_key())
    assert record.pointer == f"memory://index/{record.blob_id}"
    found = index.lookup_interface(IFACE)
    assert found is not None and found.data == b"bytecode v1" and found.record == record
    by_source = index.lookup_source(SOURCE)
    assert by_source is not None and by_source.data == b"bytecode v1"
    # one object per version under each hash, holding exactly the encoded record
    assert store.records[f"iface/{IFACE}"] == {
        xxhash.xxh3_128_hexdigest(record.encode()): record.encode()
    }
    assert index.stats().hits == 2 and index.stats().misses == {}


def test_signature_verifies_with_the_public_key_alone(index: L4Index) -> None:
    record = index.publish(IFACE, SOURCE, b"code")
    index.signing_key.public_key().verify(record.signature, record.signed_payload())


def test_newest_trusted_version_wins_unless_pinned(index: L4Index) -> None:
    old = index.publish(IFACE, SOURCE, b"old code")
    new = index.publish(IFACE, SOURCE2, b"new code")
    assert new.created_at > old.created_at
    assert index.lookup_interface(IFACE).data == b"new code"
    assert index.lookup_interface(IFACE, pin_blob_id=old.blob_id).data == b"old code"
    assert index.lookup_interface(IFACE, pin_blob_id="0" * 32) is None
    assert [r.blob_id for r in index.versions(IFACE)] == [new.blob_id, old.blob_id]


def test_unknown_hash_is_a_counted_miss(index: L4Index) -> None:
    assert index.lookup_interface("f" * 32) is None
    assert index.lookup_source("e" * 32) is None
    stats = index.stats()
    assert (stats.lookups, stats.hits) == (2, 0)
    assert stats.misses == {MissReason.NOT_FOUND: 2}


@pytest.mark.parametrize("bad", ["", "xyz", "0" * 31, "0" * 64, None, 5])
def test_bad_hashes_are_argument_errors(index: L4Index, bad: object) -> None:
    with pytest.raises(IndexArgumentError, match="interface_hash"):
        index.publish(bad, SOURCE, b"x")
    with pytest.raises(IndexArgumentError, match="source_hash"):
        index.publish(IFACE, bad, b"x")
    with pytest.raises(IndexArgumentError):
        index.lookup_interface(bad)


def _rewrite(store: MemoryStore, record: IndexRecord, **changes: object) -> None:
    """Replace the published record under the interface by a modified copy."""
    group = store.records[f"iface/{record.interface_hash}"]
    group.clear()
    forged = IndexRecord(**{**record.__dict__, **changes}).encode()
    group[xxhash.xxh3_128_hexdigest(forged)] = forged


def test_tampered_signature_is_a_miss(index: L4Index, store: MemoryStore) -> None:
    record = index.publish(IFACE, SOURCE, b"genuine")
    flipped = bytes([record.signature[0] ^ 1]) + record.signature[1:]
    _rewrite(store, record, signature=flipped)
    assert index.lookup_interface(IFACE) is None
    assert index.stats().misses == {MissReason.BAD_SIGNATURE: 1}


def test_record_pointing_at_other_bytes_is_a_miss(index: L4Index, store: MemoryStore) -> None:
    record = index.publish(IFACE, SOURCE, b"genuine")
    evil = store.put(b"malicious")
    _rewrite(store, record, blob_id=evil)  # the signature no longer matches
    assert index.lookup_interface(IFACE) is None
    assert index.stats().rejected == {MissReason.BAD_SIGNATURE: 1}


def test_replayed_record_with_a_newer_date_is_a_miss(index: L4Index, store: MemoryStore) -> None:
    old = index.publish(IFACE, SOURCE, b"old version")
    index.publish(IFACE, SOURCE, b"new version")
    # a store writer re-files the old, genuinely signed record with a later created_at
    forged = IndexRecord(**{**old.__dict__, "created_at": old.created_at + 10_000}).encode()
    store.records[f"iface/{IFACE}"][xxhash.xxh3_128_hexdigest(forged)] = forged
    assert index.lookup_interface(IFACE).data == b"new version"
    assert index.stats().rejected == {MissReason.BAD_SIGNATURE: 1}


def test_unsigned_record_is_a_miss(index: L4Index, store: MemoryStore) -> None:
    record = index.publish(IFACE, SOURCE, b"genuine")
    _rewrite(store, record, signature=b"", key_id="")
    assert index.lookup_interface(IFACE) is None
    assert index.stats().misses == {MissReason.UNSIGNED: 1}


def test_untrusted_and_revoked_publishers_are_misses(store: MemoryStore) -> None:
    publisher = L4Index(store, clock=fake_clock())
    publisher.publish(IFACE, SOURCE, b"from publisher")
    stranger = L4Index(store)
    assert stranger.lookup_interface(IFACE) is None
    assert stranger.stats().misses == {MissReason.UNTRUSTED_KEY: 1}
    pub = publisher.signing_key.public_key()
    friend = L4Index(store, keyring=KeyRing(trusted=[pub]))
    assert friend.lookup_interface(IFACE).data == b"from publisher"
    wary = L4Index(store, keyring=KeyRing(trusted=[pub], revoked=[key_id_of(pub)]))
    assert wary.lookup_interface(IFACE) is None
    assert wary.stats().misses == {MissReason.REVOKED_KEY: 1}


def test_refused_newest_version_falls_back_to_older_trusted(store: MemoryStore) -> None:
    trusted = L4Index(store, clock=fake_clock(1000.0))
    trusted.publish(IFACE, SOURCE, b"trusted old")
    L4Index(store, clock=fake_clock(2000.0)).publish(IFACE, SOURCE2, b"untrusted new")
    found = trusted.lookup_interface(IFACE)
    assert found is not None and found.data == b"trusted old"
    assert trusted.stats().rejected == {MissReason.UNTRUSTED_KEY: 1}


def test_corrupted_or_missing_blob_is_a_miss(index: L4Index, store: MemoryStore) -> None:
    record = index.publish(IFACE, SOURCE, b"bytes to damage")
    store.blobs[record.blob_id] = b"damaged"
    assert index.lookup_interface(IFACE) is None
    del store.blobs[record.blob_id]
    assert index.lookup_interface(IFACE) is None
    assert index.stats().misses == {MissReason.BLOB_CORRUPTED: 1, MissReason.BLOB_MISSING: 1}


def test_record_filed_under_another_interface_is_refused(index: L4Index, store: MemoryStore):
    record = index.publish(IFACE, SOURCE, b"code")
    other = "a" * 32
    store.records[f"iface/{other}"] = dict(store.records[f"iface/{IFACE}"])
    assert index.lookup_interface(other) is None
    assert index.stats().misses == {MissReason.MALFORMED: 1}
    assert index.lookup_interface(IFACE).record == record


def test_garbage_record_is_refused_not_raised(index: L4Index, store: MemoryStore) -> None:
    store.put_record(f"iface/{IFACE}", b"\x93\x01\x02")
    store.put_record(f"iface/{IFACE}", b"\xc1 not msgpack")
    assert index.lookup_interface(IFACE) is None
    assert index.stats().rejected == {MissReason.MALFORMED: 2}


@pytest.fixture(params=["local", "s3", "ipfs"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    """A store that several publishers share: a directory, a bucket, an IPFS node."""
    if request.param == "local":
        return LocalStore(tmp_path / "l4")
    if request.param == "s3":
        server = request.getfixturevalue("moto_server")
        bucket = request.getfixturevalue("bucket")
        return open_store(f"s3://{bucket}/l4", client=server.client(max_attempts=5))
    return open_store(request.getfixturevalue("ipfs_uri"))


def test_many_threads_publishing_one_interface_lose_nothing(shared_store: object) -> None:
    publishers = [L4Index(shared_store) for _ in range(4)]
    payloads = [f"version {i}".encode() for i in range(24)]
    barrier = threading.Barrier(8)
    errors: list[Exception] = []

    def publish(worker: int) -> None:
        barrier.wait()
        for i in range(worker, len(payloads), 8):
            source = xxhash.xxh3_128_hexdigest(payloads[i])
            try:
                publishers[worker % 4].publish(IFACE, source, payloads[i])
            except StorageError as e:  # reported below; a lost record would fail anyway
                errors.append(e)

    threads = [threading.Thread(target=publish, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    reader = L4Index(
        shared_store, keyring=KeyRing([p.signing_key.public_key() for p in publishers])
    )
    versions = reader.versions(IFACE)
    assert sorted(r.blob_id for r in versions) == sorted(
        xxhash.xxh3_128_hexdigest(p) for p in payloads
    )
    for i in (0, 11, 23):
        pinned = reader.lookup_interface(IFACE, xxhash.xxh3_128_hexdigest(payloads[i]))
        assert pinned is not None and pinned.data == payloads[i]


def test_open_l4_keeps_one_key_per_store(tmp_path: Path) -> None:
    uri = (tmp_path / "store").as_uri()
    first = open_l4(uri, state_dir=tmp_path / "state")
    first.publish(IFACE, SOURCE, b"embedded default")
    again = open_l4(uri, state_dir=tmp_path / "state")
    assert again.key_id == first.key_id
    assert again.lookup_interface(IFACE).data == b"embedded default"
    other_store = open_l4((tmp_path / "other").as_uri(), state_dir=tmp_path / "state")
    assert other_store.key_id != first.key_id
    keys = list((tmp_path / "state" / "keys").iterdir())
    assert len(keys) == 2 and all(k.stat().st_mode & 0o077 == 0 for k in keys)


def test_open_l4_with_fleet_keys(tmp_path: Path) -> None:
    fleet_key = Ed25519PrivateKey.generate()
    uri = (tmp_path / "store").as_uri()
    open_l4(uri, signing_key=fleet_key).publish(IFACE, SOURCE, b"fleet build")
    reader = open_l4(uri, trusted_keys=[fleet_key.public_key()], state_dir=tmp_path / "s")
    assert reader.lookup_interface(IFACE).data == b"fleet build"
    revoked = open_l4(
        uri,
        trusted_keys=[fleet_key.public_key()],
        revoked_keys=[fleet_key.public_key()],
        state_dir=tmp_path / "s",
    )
    assert revoked.lookup_interface(IFACE) is None
