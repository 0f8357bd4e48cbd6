"""`ShardedL2Store` over in-process shards: the `L2StoreTests` conformance suite, then what
the fleet adds: one round trip per lookup, the near-cache, cosines recomputed from the vectors
received, placement and replicas that evict alike, sensitive answers never shared, faults
that cost hits and never calls, and the semantic cache across two nodes."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import replace

import msgpack
import numpy as np
import pytest

from cluster.errors import ClusterError
from cluster.l2codec import bucket_agent, decode_entry, encode_entry, function_scope
from cluster.l2store import ShardedL2Store
from cluster.vectors import pack_vector_value
from cluster.wire import WIRE_VERSION, Entry, Stamp, decode_request
from delegation.l2.book import CalibrationBook
from delegation.l2.cache import SemanticCache
from delegation.l2.calibration import Calibration
from delegation.l2.config import L2Config
from delegation.l2.embedder import HashingEmbedder
from delegation.l2.guard import GUARD_VERSION
from delegation.l2.keys import BucketKey, L2Call
from delegation.l2.store import L2Entry, L2Store
from delegation.l2.testing import FakeClock, L2StoreTests, unit
from rtfs.values import Keyword, Map
from tests.cluster.support import LocalFleet

BUCKET = BucketKey("ns", "ask", "d1")
DIM = 32


class TestShardedL2StoreOverInProcessShards(L2StoreTests):
    """The suite over three in-process shards, two copies of each bucket."""

    def make_store(self, max_entries: int, ttl_s: float,
                   timer: Callable[[], float]) -> L2Store:
        fleet = LocalFleet(timer, namespace_max={"l2": max_entries})
        return fleet.l2_store(ttl_s=ttl_s)

    def test_is_shared(self) -> None:
        assert ShardedL2Store.shared is True


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fleet(clock: FakeClock) -> LocalFleet:
    return LocalFleet(clock)


def entry(text: str, value: object, vector: np.ndarray | None = None,
          bucket: BucketKey = BUCKET, model: str = "m1") -> L2Entry:
    return L2Entry(bucket, f"k:{text}", (text,), value, model if vector is not None else None,
                   vector, 1_700_000_000.0)


def seeded(fleet: LocalFleet, n: int = 10, seed: int = 0) -> list[np.ndarray]:
    """`n` entries in BUCKET written by another node and flushed."""
    rng = np.random.default_rng(seed)
    vectors = [unit(rng, DIM) for _ in range(n)]
    writer = fleet.l2_store()
    for i, v in enumerate(vectors):
        writer.put(entry(f"text {i}", i, v))
    writer.flush()
    assert isinstance(fleet.clock, FakeClock)
    fleet.clock.advance(0.001)  # what follows happens later (versions are wall-clock based)
    return vectors


def test_a_semantic_lookup_is_one_request_and_a_repeated_exact_one_none(
        fleet: LocalFleet) -> None:
    vectors = seeded(fleet)
    reader = fleet.l2_store()
    fleet.transport.requests.clear()
    embedded: list[int] = []

    def query() -> np.ndarray:
        embedded.append(1)
        return vectors[3]

    found = reader.find(BUCKET, "k:a paraphrase", "m1", query, 4)
    assert [e.value for e, _ in found.nearest][:1] == [3]
    assert len(fleet.transport.requests) == 1 and embedded == [1]
    exact = reader.find(BUCKET, "k:text 3", "m1", query, 4)  # a candidate it received
    assert exact.exact is not None and exact.exact.value == 3
    again = reader.find(BUCKET, "k:text 3", "m1", query, 4)
    assert again.exact is exact.exact  # the same object while unchanged
    assert len(fleet.transport.requests) == 1 and embedded == [1]  # no round trip, no embed
    assert reader.round_trips == 1


def test_the_request_goes_to_the_buckets_primary_replica(fleet: LocalFleet) -> None:
    seeded(fleet)
    reader = fleet.l2_store()
    fleet.transport.requests.clear()
    reader.get_exact(BUCKET, "k:text 1")
    assert fleet.transport.requests == [reader.client.placement.order(bucket_agent(BUCKET))[0]]
    assert sorted(fleet.holders("l2", bucket_agent(BUCKET), "k:text 1")) == sorted(
        reader.client.placement.replicas(bucket_agent(BUCKET)))


class LyingTransport:
    """Passes requests on, and rewrites every candidate's cosine in `nearest` replies to 1.0
    (an index that is wrong, or a shard that lies)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def call_many(self, requests: Mapping[str, bytes], timeout_s: float
                  ) -> dict[str, bytes | ClusterError]:
        replies = self.inner.call_many(requests, timeout_s)  # type: ignore[attr-defined]
        out: dict[str, bytes | ClusterError] = {}
        for name, reply in replies.items():
            if isinstance(reply, bytes) and decode_request(requests[name])[0][0] == "nearest":
                version, results = msgpack.unpackb(reply, raw=False)
                for status, value in results:
                    if status == 0:
                        for candidate in value[1]:
                            candidate[1] = 1.0
                reply = msgpack.packb([version, results], use_bin_type=True)
            out[name] = reply
        return out

    def close(self) -> None:
        pass


def test_the_cosine_is_recomputed_from_the_vectors_received(fleet: LocalFleet) -> None:
    vectors = seeded(fleet)
    store = fleet.l2_store()
    store.client.transport = LyingTransport(fleet.transport)
    query = unit(np.random.default_rng(9), DIM)
    found = store.nearest(BUCKET, "m1", query, 4)
    assert found and all(
        similarity == pytest.approx(float(vectors[e.value].astype(np.float64) @ query))
        for e, similarity in found)
    assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)


def test_sensitive_calls_never_reach_the_fleet(fleet: LocalFleet) -> None:
    store = fleet.l2_store()
    embedder = HashingEmbedder(256)
    cache = SemanticCache(L2Config(model="hashing-ngram-v1-d256", shadow_rate=0.0), embedder,
                          store=store, book=_book(embedder), rng=random.Random(1))
    secret = L2Call("ns", "ask", "remote/m", "1", ("my account number is 12345",), True)
    assert cache.put(secret, "private answer") is False
    store.put(replace(entry("direct", "private", unit(np.random.default_rng(1), DIM)),
                      private=True))
    store.flush()
    assert fleet.transport.requests == [] and store.refused_private == 1
    assert all(not shard.key_hashes("l2") for shard in fleet.shards.values())
    found = cache.lookup(secret)
    assert not found.hit and "sensitive" in found.reason and fleet.transport.requests == []


def _book(embedder: HashingEmbedder, threshold: float = 0.5) -> CalibrationBook:
    calibration = Calibration(embedder.model_id, embedder.weights_sha256, GUARD_VERSION, 0.01,
                              threshold, 300, 2, 300, 120, 0.02, 0.95, "test pairs", 0.0)
    return CalibrationBook(defaults={embedder.model_id: calibration})


def test_the_semantic_cache_of_one_node_serves_another_in_one_round_trip(
        fleet: LocalFleet) -> None:
    embedder = HashingEmbedder(256)
    config = L2Config(model="hashing-ngram-v1-d256", shadow_rate=0.0)
    node_a, node_b = (SemanticCache(config, embedder, store=fleet.l2_store(),
                                    book=_book(embedder), rng=random.Random(2))
                      for _ in range(2))
    question = "How do I reset the password of my account?"
    asked = L2Call("acme", "ask", "remote/m", "1", (question, Keyword("en")))
    assert node_a.put(asked, "Use 'Forgot password'.")
    node_a.store.flush()  # type: ignore[attr-defined]
    fleet.transport.requests.clear()
    paraphrase = replace(asked, args=("How can I reset the password for my account?",
                                      Keyword("en")))
    found = node_b.lookup(paraphrase)
    assert (found.hit, found.tier, found.value) == (True, "semantic", "Use 'Forgot password'.")
    assert len(fleet.transport.requests) == 1
    other_language = replace(paraphrase, args=(paraphrase.args[0], Keyword("fr")))
    assert not node_b.lookup(other_language).hit  # a structured argument: another bucket
    assert not node_b.lookup(replace(paraphrase, namespace="globex")).hit


def test_answers_round_trip_through_the_wire_value() -> None:
    v = unit(np.random.default_rng(3), DIM)
    original = entry("some text", Map({Keyword("label"): "positive", Keyword("score"): 0.9}), v)
    decoded = decode_entry(original.texts_key, encode_entry(original))
    assert decoded.value == original.value and decoded.texts == original.texts
    assert decoded.bucket == BUCKET and decoded.model_id == "m1"
    np.testing.assert_array_equal(decoded.vector, v)
    with pytest.raises(TypeError):
        encode_entry(entry("f", lambda: 1))


def test_an_unencodable_answer_stays_out_of_the_fleet(fleet: LocalFleet) -> None:
    store = fleet.l2_store()
    store.put(entry("a function", print))
    store.flush()
    assert store.unencodable == 1 and fleet.transport.requests == []


def test_values_this_version_cannot_read_are_misses(fleet: LocalFleet) -> None:
    agent = bucket_agent(BUCKET)
    stamp = Stamp(1, "other", fleet.wall() + 60)
    forged = encode_entry(entry("t2", "of another bucket", bucket=BucketKey("ns", "ask", "zz")))
    rows = [Entry(agent, "k:t1", stamp, b"\xc1garbage"), Entry(agent, "k:t2", stamp, forged),
            Entry(agent, "k:t3", stamp, pack_vector_value(None, None, b"\xc1"))]
    for shard in fleet.shards.values():
        shard.put_many("l2", rows)
    store = fleet.l2_store()
    assert [store.get_exact(BUCKET, f"k:t{i}") for i in (1, 2, 3)] == [None, None, None]
    assert store.bad_values == 3


def test_an_entry_removed_elsewhere_is_seen_within_the_near_ttl(
        fleet: LocalFleet, clock: FakeClock) -> None:
    seeded(fleet)
    a, b = fleet.l2_store(), fleet.l2_store()
    held = b.get_exact(BUCKET, "k:text 2")
    assert held is not None
    assert a.invalidate_function("ns", "ask") == 10
    assert b.get_exact(BUCKET, "k:text 2") is held  # within b's near-cache TTL: stale by design
    clock.advance(b.near_ttl_s)
    assert b.get_exact(BUCKET, "k:text 2") is None


def test_replicas_learn_what_was_read_and_evict_alike(clock: FakeClock) -> None:
    fleet = LocalFleet(clock, namespace_max={"l2": 3})
    writer = fleet.l2_store()
    for name in "abc":
        writer.put(entry(name, name))
    writer.flush()
    reader = fleet.l2_store()
    assert reader.get_exact(BUCKET, "k:a") is not None  # read from the primary only
    reader.flush()  # ... and the touch reaches both replicas
    writer.put(entry("d", "d"))
    writer.flush()
    agent = bucket_agent(BUCKET)
    for shard in reader.client.placement.replicas(agent):
        held = fleet.shards[shard].get_many("l2", [(agent, f"k:{n}") for n in "abcd"])
        assert [e is not None for e in held] == [True, False, True, True], shard
    assert writer.stats().evictions == 1 and len(writer) == 3


def test_a_down_primary_is_walked_around_and_a_dead_fleet_is_a_miss(
        fleet: LocalFleet, clock: FakeClock) -> None:
    vectors = seeded(fleet)
    store = fleet.l2_store()
    order = store.client.placement.order(bucket_agent(BUCKET))
    fleet.transport.down = {order[0]}
    found = store.nearest(BUCKET, "m1", vectors[4], 2)
    assert found[0][0].value == 4  # answered by the second replica
    assert store.client.stats().down == (order[0],)
    fleet.transport.down = set(fleet.shards)
    clock.advance(60.0)  # every cooldown over, every near-cache entry stale
    other = fleet.l2_store()
    assert other.nearest(BUCKET, "m1", vectors[4], 2) == []
    assert other.get_exact(BUCKET, "k:text 4") is None
    nothing = other.find(BUCKET, "k:text 4", "m1", lambda: vectors[4], 2)
    assert (nothing.exact, nothing.nearest) == (None, [])


def test_the_near_cache_carries_a_lookup_while_no_shard_answers(
        fleet: LocalFleet, clock: FakeClock) -> None:
    vectors = seeded(fleet)
    store = fleet.l2_store()
    assert store.nearest(BUCKET, "m1", vectors[5], 3)  # candidates now in the near-cache
    fleet.transport.down = set(fleet.shards)
    clock.advance(store.near_ttl_s * 2)  # stale: asks the fleet, which does not answer
    found = store.find(BUCKET, "k:something else", "m1", lambda: vectors[5], 3)
    assert found.exact is None and found.nearest[0][0].value == 5
    assert found.nearest[0][1] == pytest.approx(1.0, abs=1e-5)
    exact = store.get_exact(BUCKET, "k:text 5")
    assert exact is not None and exact.value == 5
    clock.advance(60.0)  # past the entries' own TTL: nothing
    assert store.get_exact(BUCKET, "k:text 5") is None


def test_writes_wait_for_a_fleet_that_is_away_and_arrive_when_it_is_back(
        fleet: LocalFleet, clock: FakeClock) -> None:
    store = fleet.l2_store()
    fleet.transport.down = set(fleet.shards)
    v = unit(np.random.default_rng(5), DIM)
    store.put(entry("queued", "later", v))
    store.flush()
    assert fleet.holders("l2", bucket_agent(BUCKET), "k:queued") == []
    found = store.get_exact(BUCKET, "k:queued")  # our own write, not yet taken: answers
    assert found is not None and found.value == "later"
    fleet.transport.down = set()
    clock.advance(20.0)  # every cooldown over
    store.flush()
    assert len(fleet.holders("l2", bucket_agent(BUCKET), "k:queued")) == 2


def test_a_fleet_that_stays_away_costs_at_most_max_pending_rows(fleet: LocalFleet) -> None:
    store = fleet.l2_store(max_pending=3)
    fleet.transport.down = set(fleet.shards)
    for i in range(5):
        store.put(entry(f"t{i}", i, bucket=BucketKey("ns", "ask", f"d{i}")))
    store.flush()
    assert store.writes.dropped_rows == 2 and len(store.writes) == 3


def test_an_invalidation_a_shard_missed_reaches_it_later(
        fleet: LocalFleet, clock: FakeClock) -> None:
    seeded(fleet)
    store = fleet.l2_store()
    agent = bucket_agent(BUCKET)
    _, second = store.client.placement.replicas(agent)
    fleet.transport.down = {second}
    store.client.send({second: [["ping"]]})  # the client learns it is down
    assert store.invalidate_namespace("ns") == 10
    assert fleet.holders("l2", agent, "k:text 0") == [second]  # it missed the invalidation
    fleet.transport.down = set()
    clock.advance(20.0)
    store.flush()
    assert fleet.holders("l2", agent, "k:text 0") == []
    late = Entry(agent, "k:text 0", Stamp(1, "late", fleet.wall() + 60), b"late copy")
    assert fleet.shards[second].put_many("l2", [late]) == 0  # its floor refuses old copies
    assert function_scope("ns", "ask").startswith("ns\x1f")


def test_the_background_thread_sends_writes_behind(fleet: LocalFleet) -> None:
    store = fleet.l2_store(background=True, flush_interval_s=3600.0, flush_rows=3)
    try:
        for i in range(3):
            store.put(entry(f"t{i}", i))
        _wait_for(lambda: len(fleet.holders("l2", bucket_agent(BUCKET), "k:t2")) == 2)
    finally:
        store.close()


def _wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the background flush never came"
        time.sleep(0.01)


def test_request_bytes_are_the_versioned_wire(fleet: LocalFleet) -> None:
    captured: list[bytes] = []
    inner = fleet.transport

    class Capture:
        def call_many(self, requests, timeout_s):  # type: ignore[no-untyped-def]
            captured.extend(requests.values())
            return inner.call_many(requests, timeout_s)

        def close(self) -> None:
            pass

    store = fleet.l2_store()
    store.client.transport = Capture()  # type: ignore[assignment]
    store.nearest(BUCKET, "m1", unit(np.random.default_rng(0), DIM), 4)
    [request] = captured
    version, [op] = msgpack.unpackb(request, raw=False)
    assert version == WIRE_VERSION and op[0] == "nearest" and op[1] == "l2"
    assert op[2] == bucket_agent(BUCKET) and op[4] == "m1" and len(op[5]) == 4 * DIM
