"""A store that is down costs one failure, then fails at once: the outage latch.

Three ways to be down, each against S3 and IPFS: a moto server stopped mid-test, a port that
refuses connections, and a server that accepts and never answers. Whether a call touched the
network is counted, not timed: connections the silent server accepted, and connection
attempts counted at `socket.connect`. Latch periods run on a fake clock.
"""

from __future__ import annotations

import pickle
import socket
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from storage import (
    BlobNotFound,
    LocalStore,
    MemoryStore,
    Outage,
    OutageLatch,
    SplitStore,
    StorageUnavailable,
    StoreDown,
    TieredStore,
    open_l4,
    open_store,
)
from storage.testing import FakeClock
from storage.testservers import MotoServer, SilentServer, free_port

IFACE, SOURCE = "1" * 32, "2" * 32
MISSING = "0" * 32
FAST = {"connect_timeout_s": 1.0, "read_timeout_s": 0.5}  # a hanging server costs 0.5 s


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """Connection attempts per port, counted where every client opens sockets."""
    counts: Counter[int] = Counter()
    real = socket.socket.connect

    def counting(sock: socket.socket, address: Any) -> None:
        if isinstance(address, tuple):
            counts[address[1]] += 1
        real(sock, address)

    monkeypatch.setattr(socket.socket, "connect", counting)
    return counts


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    with SilentServer() as server:
        yield server


def s3_at(endpoint_url: str, clock: FakeClock, **options: Any) -> Any:
    creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    options = {"down_for_s": 30, **creds, **options}
    return open_store(
        "s3://bucket/l4", endpoint_url=endpoint_url, region_name="us-east-1", timer=clock, **options
    )


def ipfs_at(port: int, clock: FakeClock, **options: Any) -> Any:
    options = {"down_for_s": 30, **options}
    return open_store(f"ipfs://127.0.0.1:{port}/l4", timer=clock, **options)


CALLS: list[Callable[[Any], object]] = [
    lambda store: store.get(MISSING),
    lambda store: store.put(b"x"),
    lambda store: store.contains(MISSING),
    lambda store: list(store.iterate()),
    lambda store: store.list_records("iface/" + IFACE),
    lambda store: store.put_record("iface/" + IFACE, b"r"),
]


def assert_latched(store: Any, network_calls: Callable[[], int]) -> Outage:
    """Every operation raises StoreDown naming the outage, without touching the network."""
    outage = store.outage
    assert outage is not None and outage.store == store.uri
    before = network_calls()
    for call in CALLS:
        with pytest.raises(StoreDown) as info:
            call(store)
        assert info.value.store == store.uri and info.value.cause == outage.cause
        assert isinstance(info.value, StorageUnavailable)
        assert store.uri in str(info.value) and outage.cause in str(info.value)
    assert network_calls() == before
    return outage


# -- a moto server stopped mid-test -----------------------------------------------------------


def test_s3_server_stopped_mid_test_latches_then_recovers(attempts: Counter[int]) -> None:
    clock = FakeClock()
    server = MotoServer()
    endpoint = server.start()
    port = int(endpoint.rsplit(":", 1)[1])
    server.client().create_bucket(Bucket="bucket")
    store = s3_at(endpoint, clock)
    blob_id = store.put(b"before the outage")
    with pytest.raises(BlobNotFound):
        store.get(MISSING)  # a missing blob is an answer, not an outage
    assert store.outage is None
    server.stop()

    tried = attempts[port]
    with pytest.raises(StoreDown, match="EndpointConnectionError") as info:
        store.get(blob_id)
    assert attempts[port] - tried == 2  # the first try and one retry, then the latch
    outage = assert_latched(store, lambda: attempts[port])
    assert outage.cause == info.value.cause and "get l4/blobs/" in outage.cause
    assert (outage.since_s, outage.until_s) == (clock.now_s, clock.now_s + 30)

    clock.advance(29.9)
    assert_latched(store, lambda: attempts[port])
    clock.advance(0.2)
    assert store.outage is None
    restarted = MotoServer(port=port)  # moto's backends live in this process: same bucket
    restarted.start()
    try:
        assert store.get(blob_id) == b"before the outage"
        assert store.outage is None
    finally:
        restarted.stop()


def test_index_over_a_stopped_server_says_why_it_misses(tmp_path: Path) -> None:
    clock = FakeClock()
    server = MotoServer()
    endpoint = server.start()
    server.client().create_bucket(Bucket="bucket")
    store = s3_at(endpoint, clock, max_attempts=1)
    index = open_l4(store, state_dir=tmp_path)
    index.publish(IFACE, SOURCE, b"published")
    assert index.outage is None
    server.stop()
    with pytest.raises(StoreDown) as info:
        index.lookup_interface(IFACE)
    assert index.outage == store.outage and index.outage is not None
    assert str(index.outage) == f"s3://bucket/l4/ is down: {info.value.cause}"
    with pytest.raises(StoreDown):
        index.publish(IFACE, SOURCE, b"skipped while down")


def test_tiered_store_serves_local_hits_while_its_remote_is_latched(
    tmp_path: Path, attempts: Counter[int]
) -> None:
    clock = FakeClock()
    server = MotoServer()
    endpoint = server.start()
    port = int(endpoint.rsplit(":", 1)[1])
    server.client().create_bucket(Bucket="bucket")
    remote = s3_at(endpoint, clock, max_attempts=1)
    tier = TieredStore(remote, tmp_path / "cache")
    cached = tier.put(b"cached before the outage")
    uncached = remote.put(b"only in the bucket")
    server.stop()
    with pytest.raises(StoreDown):
        tier.get(uncached)
    tried = attempts[port]
    for _ in range(3):
        assert tier.get(cached) == b"cached before the outage"
        with pytest.raises(StoreDown):
            tier.get(uncached)
    assert attempts[port] == tried
    assert tier.outage == remote.outage and tier.outage is not None
    health = tier.health()
    assert not health.remote_ok and "is down" in str(health.last_remote_error)


# -- a port that refuses connections ----------------------------------------------------------


@pytest.mark.parametrize("backend", ["s3", "ipfs"])
def test_refused_port_latches_after_the_first_failure(
    backend: str, attempts: Counter[int]
) -> None:
    clock = FakeClock()
    port = free_port()
    store = s3_at(f"http://127.0.0.1:{port}", clock) if backend == "s3" else ipfs_at(port, clock)
    with pytest.raises(StoreDown) as info:
        store.put(b"nobody listens")
    assert "Connection" in info.value.cause  # EndpointConnectionError / ConnectionError
    assert 1 <= attempts[port] <= 2
    assert_latched(store, lambda: attempts[port])
    clock.advance(31)
    tried = attempts[port]
    with pytest.raises(StoreDown):
        store.get(MISSING)
    assert attempts[port] > tried  # the latch expired: one more try, which latches again
    assert store.outage is not None and store.outage.since_s == clock.now_s


def test_down_for_none_latches_for_the_life_of_the_store(attempts: Counter[int]) -> None:
    clock = FakeClock()
    port = free_port()
    store = ipfs_at(port, clock, down_for_s=None)
    with pytest.raises(StoreDown):
        store.get(MISSING)
    clock.advance(10**9)
    assert store.outage is not None and store.outage.until_s is None
    assert_latched(store, lambda: attempts[port])


def test_down_for_zero_never_latches(attempts: Counter[int]) -> None:
    port = free_port()
    store = ipfs_at(port, FakeClock(), down_for_s=0)
    for expected in (1, 2, 3):
        with pytest.raises(StoreDown):
            store.get(MISSING)
        assert attempts[port] == expected and store.outage is None


# -- a server that accepts and never answers ---------------------------------------------------


def test_s3_endpoint_that_never_answers(silent: SilentServer) -> None:
    clock = FakeClock()
    store = s3_at(silent.url, clock, **FAST)
    with pytest.raises(StoreDown, match="ReadTimeoutError"):
        store.get(MISSING)
    assert silent.accepted == 2  # max_attempts=2 by default, each on a fresh connection
    assert_latched(store, lambda: silent.accepted)
    clock.advance(30)
    with pytest.raises(StoreDown):
        store.list_records("iface/" + IFACE)
    assert silent.accepted == 4


def test_ipfs_daemon_that_never_answers(silent: SilentServer) -> None:
    clock = FakeClock()
    store = ipfs_at(silent.port, clock, **FAST)
    with pytest.raises(StoreDown, match="TimeoutError"):
        store.get(MISSING)
    assert silent.accepted == 1
    assert_latched(store, lambda: silent.accepted)
    clock.advance(30)
    with pytest.raises(StoreDown):
        store.put(b"again")
    assert silent.accepted == 2


def test_index_store_that_never_answers_latches_a_split_store(
    silent: SilentServer, tmp_path: Path
) -> None:
    """Blobs local, records on a hanging S3: the split store reports the records' outage."""
    clock = FakeClock()
    records = s3_at(silent.url, clock, max_attempts=1, **FAST)
    index = open_l4(LocalStore(tmp_path / "blobs"), index_store=records, state_dir=tmp_path)
    assert isinstance(index.store, SplitStore)
    with pytest.raises(StoreDown):
        index.publish(IFACE, SOURCE, b"code")
    assert silent.accepted == 1
    with pytest.raises(StoreDown):
        index.lookup_source(SOURCE)
    assert silent.accepted == 1
    assert index.outage == records.outage and index.outage is not None


# -- what is not an outage --------------------------------------------------------------------


def test_error_answers_do_not_latch(moto_server: MotoServer, bucket: str) -> None:
    store = open_store(f"s3://{bucket}/l4", **moto_server.client_args())
    with pytest.raises(BlobNotFound):
        store.get(MISSING)
    wrong_bucket = open_store("s3://no-such-bucket-here", **moto_server.client_args())
    with pytest.raises(StorageUnavailable, match="NoSuchBucket") as info:
        wrong_bucket.put(b"x")
    assert not isinstance(info.value, StoreDown)
    assert store.outage is None and wrong_bucket.outage is None
    with pytest.raises(StorageUnavailable, match="NoSuchBucket"):
        wrong_bucket.put(b"x")  # asked again: S3 answered, so it is asked again


def test_ipfs_cid_nobody_has_is_missing_not_down(ipfs_uri: str) -> None:
    store = open_store(ipfs_uri, fetch_timeout_s=0.2)
    nobody_has = "ipfs://QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
    with pytest.raises(BlobNotFound):
        store.fetch_pointer(nobody_has, MISSING)
    assert store.outage is None
    assert store.get(store.put(b"still answering")) == b"still answering"


# -- the latch itself -------------------------------------------------------------------------


def test_latch_keeps_the_first_cause_and_resets() -> None:
    clock = FakeClock()
    latch = OutageLatch("s3://b/", down_for_s=5, timer=clock)
    latch.check()
    first = latch.trip("connect: refused")
    second = latch.trip("read: timed out")
    assert first.cause == second.cause == "connect: refused"
    assert latch.outage == Outage("s3://b/", "connect: refused", clock.now_s, clock.now_s + 5)
    with pytest.raises(StoreDown, match="connect: refused"):
        latch.check()
    latch.reset()
    latch.check()
    assert latch.outage is None


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "5"])
def test_latch_refuses_a_bad_period(bad: Any) -> None:
    with pytest.raises(ValueError, match="down_for_s"):
        OutageLatch("s3://b/", down_for_s=bad)


def test_stores_pickle_without_their_outage() -> None:
    """A copy in another process must try the backend itself: the latch does not travel."""
    clock = FakeClock()
    store = ipfs_at(free_port(), clock)
    with pytest.raises(StoreDown):
        store.get(MISSING)
    clone = pickle.loads(pickle.dumps(store))
    assert clone.outage is None and store.outage is not None
    assert MemoryStore().outage is None
