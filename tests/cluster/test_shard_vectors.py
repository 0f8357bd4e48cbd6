"""The shard's L2 side, on the plain class and through its wire: nearest neighbours inside one
agent and one model, a namespace's own capacity, evictions reported, touches, scoped
invalidation (floors that outlive late copies and travel with rehydration), key hashes."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.client import InProcessTransport, ShardClient, rehydrate
from cluster.errors import WireError
from cluster.shard import CacheShard, parse_dump
from cluster.topology import ShardInfo, Topology
from cluster.vectors import VectorTable, pack_vector_value, unpack_vector_value
from cluster.wire import (
    FAILED,
    OK,
    WIRE_VERSION,
    Entry,
    Stamp,
    decode_reply,
    encode_request,
    entries_from,
)
from delegation.testing import FakeClock

NOW = 1_700_000_000.0
SEP = "\x1f"
BUCKET = f"ns{SEP}ask{SEP}d1"


def unit(rng: np.random.Generator, dimension: int = 16) -> np.ndarray:
    v = rng.standard_normal(dimension).astype(np.float32)
    return v / np.linalg.norm(v)


def vec_entry(agent: str, task: str, vector: np.ndarray | None, model: str = "m1",
              version: int = 1, ttl_s: float = 60.0, writer: str = "w") -> Entry:
    value = pack_vector_value(model, vector, f"payload {task}".encode())
    return Entry(agent, task, Stamp(version, writer, NOW + ttl_s), value)


def make(**options: object) -> tuple[CacheShard, FakeClock]:
    clock = FakeClock(NOW)
    return CacheShard("s0", clock=clock, **options), clock  # type: ignore[arg-type]


def test_vector_values_round_trip_and_garbage_is_refused() -> None:
    v = unit(np.random.default_rng(0))
    model, vector, payload = unpack_vector_value(pack_vector_value("m1", v, b"p"))
    assert model == "m1" and payload == b"p" and vector is not None
    np.testing.assert_array_equal(vector, v)
    assert unpack_vector_value(pack_vector_value("m1", None, b"q")) == (None, None, b"q")
    for bad in (b"", b"\xc1", msgpack.packb([2, "m", b"\0\0\0\0", b""]),
                msgpack.packb([1, "m", b"\0\0\0", b""]), msgpack.packb([1, None, b"\0" * 4, b""]),
                msgpack.packb([1, "m", np.array([np.nan], "<f4").tobytes(), b""]), 42):
        with pytest.raises(WireError):
            unpack_vector_value(bad)


def test_nearest_is_exact_first_then_by_cosine_within_one_agent_and_model() -> None:
    shard, _ = make()
    rng = np.random.default_rng(1)
    vectors = {f"t{i}": unit(rng) for i in range(12)}
    shard.put_many("l2", [vec_entry(BUCKET, t, v) for t, v in vectors.items()])
    other = unit(rng)
    shard.put_many("l2", [vec_entry(f"ns{SEP}ask{SEP}d2", "x", other),  # another bucket
                          vec_entry(BUCKET, "other-model", other, model="m2")])
    query = unit(rng)
    exact, found = shard.nearest("l2", BUCKET, "t3", "m1", query, 4)
    assert exact is not None and exact.task == "t3" and found == []
    exact, found = shard.nearest("l2", BUCKET, "absent", "m1", query, 4)
    truth = sorted(vectors, key=lambda t: -float(vectors[t].astype(np.float64) @ query))[:4]
    assert exact is None and [e.task for e, _ in found] == truth
    for entry, cosine in found:
        assert cosine == pytest.approx(float(vectors[entry.task] @ query), abs=1e-5)
    _, found = shard.nearest("l2", BUCKET, None, "m2", other, 4)
    assert [e.task for e, _ in found] == ["other-model"]  # never another model's vectors
    assert shard.nearest("l2", BUCKET, None, "m1", unit(rng, 8), 4) == (None, [])  # dimension
    assert shard.nearest("l2", BUCKET, None, "m3", query, 4) == (None, [])
    stats = shard.stats()
    assert (stats.hits, stats.misses) == (3, 2)


def test_replaced_removed_and_expired_values_leave_the_index() -> None:
    shard, clock = make()
    rng = np.random.default_rng(2)
    old, new, short = unit(rng), unit(rng), unit(rng)
    shard.put_many("l2", [vec_entry(BUCKET, "a", old), vec_entry(BUCKET, "s", short, ttl_s=5)])
    shard.put_many("l2", [vec_entry(BUCKET, "a", new, version=2)])
    _, found = shard.nearest("l2", BUCKET, None, "m1", old, 5)
    assert {e.task for e, _ in found} == {"a", "s"}
    assert [e.task for e, _ in found if e.task == "a"] == ["a"]  # one copy, the new vector
    assert found[[e.task for e, _ in found].index("a")][1] == pytest.approx(
        float(new @ old), abs=1e-5)
    shard.invalidate("l2", BUCKET, "a", Stamp(3, "w", NOW + 60))
    clock.advance(6)
    assert shard.nearest("l2", BUCKET, None, "m1", new, 5) == (None, [])


def test_values_without_a_usable_vector_are_kept_but_never_compared() -> None:
    shard, _ = make()
    v, short = unit(np.random.default_rng(3)), unit(np.random.default_rng(4), 8)
    shard.put_many("l2", [
        Entry(BUCKET, "opaque", Stamp(1, "w", NOW + 60), b"\xc1 not a vector value"),
        vec_entry(BUCKET, "no-vector", None),
        vec_entry(BUCKET, "first", v),  # sets the dimension of (BUCKET, m1): 16
        vec_entry(BUCKET, "other-dimension", short),
    ])
    assert [e.task for e, _ in shard.nearest("l2", BUCKET, None, "m1", v, 9)[1]] == ["first"]
    assert shard.nearest("l2", BUCKET, None, "m1", short, 9) == (None, [])
    held = shard.get_many("l2", [(BUCKET, t) for t in ("opaque", "no-vector", "other-dimension")])
    assert all(e is not None for e in held)


def test_a_capped_namespace_evicts_its_own_least_recently_used_and_reports_them() -> None:
    shard, _ = make(max_entries=100, namespace_max={"l2": 3})
    rng = np.random.default_rng(7)
    shard.put_many("l1", [Entry("plan", "t", Stamp(1, "w", NOW + 60), b"plan")])
    shard.put_many("l2", [vec_entry(BUCKET, t, unit(rng)) for t in "abc"])
    assert shard.touch("l2", [(BUCKET, "a"), (BUCKET, "zz")]) == 1  # b is now the oldest
    evicted: list[tuple[str, str]] = []
    assert shard.put_many("l2", [vec_entry(BUCKET, "d", unit(rng))], evicted) == 1
    assert evicted == [(BUCKET, "b")]
    assert [e is not None for e in shard.get_many("l2", [(BUCKET, t) for t in "abcd"])] == [
        True, False, True, True]
    assert shard.get_many("l1", [("plan", "t")])[0] is not None  # other namespaces untouched
    assert shard.stats().evictions == 1
    with pytest.raises(ValueError):
        CacheShard("bad", namespace_max={"l7": 3})


def test_touch_reorders_without_counting_lookups() -> None:
    shard, _ = make(max_entries=2)
    shard.put_many("l1", [Entry(a, "t", Stamp(1, "w", NOW + 60), b"v") for a in "ab"])
    before = shard.stats()
    shard.touch("l1", [("a", "t")])
    shard.put_many("l1", [Entry("c", "t", Stamp(1, "w", NOW + 60), b"v")])
    assert [e is not None for e in shard.get_many("l1", [("a", "t"), ("b", "t")])] == [
        True, False]
    assert (before.hits, before.misses) == (0, 0)
    assert (shard.stats().hits, shard.stats().misses) == (1, 1)  # the get only


def test_invalidate_scope_drops_exactly_its_agents_and_its_floor_refuses_older_writes() -> None:
    shard, _ = make()
    rng = np.random.default_rng(8)
    agents = [f"ns{SEP}ask{SEP}d1", f"ns{SEP}ask{SEP}d2", f"ns{SEP}ask-more{SEP}d1",
              f"ns2{SEP}ask{SEP}d1"]
    shard.put_many("l2", [vec_entry(a, "t", unit(rng), version=5) for a in agents])
    dropped = shard.invalidate_scope("l2", f"ns{SEP}ask{SEP}", Stamp(10, "w", NOW + 60))
    assert sorted(dropped) == [(agents[0], "t"), (agents[1], "t")]
    alive = shard.get_many("l2", [(a, "t") for a in agents])
    assert [e is not None for e in alive] == [False, False, True, True]
    late = [vec_entry(agents[0], "t", unit(rng), version=9),  # an older copy arrives late
            vec_entry(f"ns{SEP}ask{SEP}d9", "t", unit(rng), version=9)]  # also for new agents
    assert shard.put_many("l2", late) == 0
    assert shard.put_many("l2", [vec_entry(agents[0], "t", unit(rng), version=11)]) == 1
    assert sorted(shard.invalidate_scope("l2", f"ns{SEP}", Stamp(12, "w", NOW + 60))) == [
        (agents[0], "t"), (agents[2], "t")]
    with pytest.raises(ValueError):
        shard.invalidate_scope("l2", "ns", Stamp(13, "w", NOW + 60))


def test_key_hashes_are_of_live_values_only() -> None:
    shard, clock = make()
    shard.put_many("l2", [vec_entry(BUCKET, "a", None), vec_entry(BUCKET, "b", None, ttl_s=1)])
    shard.invalidate("l2", BUCKET, "c", Stamp(2, "w", NOW + 60))
    clock.advance(2)
    assert shard.key_hashes("l2") == [xxhash.xxh3_64_intdigest(f"{BUCKET}\x00a".encode())]
    assert shard.key_hashes("l1") == []


def test_scope_floors_travel_with_rehydration() -> None:
    clock = FakeClock(NOW)
    topology = Topology("t", (ShardInfo("s0"), ShardInfo("s1")), 2)
    shards = {n: CacheShard(n, clock=clock) for n in topology.names}
    rng = np.random.default_rng(9)
    v = unit(rng)
    for shard in shards.values():
        shard.put_many("l2", [vec_entry(BUCKET, "keep", v, version=20),
                              vec_entry(f"ns{SEP}gone{SEP}d", "x", unit(rng), version=3)])
        shard.invalidate_scope("l2", f"ns{SEP}gone{SEP}", Stamp(10, "w", NOW + 60))
    restarted = CacheShard("s1", clock=clock)  # came back empty
    client = ShardClient(topology, InProcessTransport({"s0": shards["s0"]}), timer=clock)
    applied, missing = rehydrate(restarted, client)
    assert applied == 1 and missing == []
    _, found = restarted.nearest("l2", BUCKET, None, "m1", v, 3)
    assert [e.task for e, _ in found] == ["keep"]  # its index was rebuilt too
    late = vec_entry(f"ns{SEP}gone{SEP}d", "x", unit(rng), version=3)
    assert restarted.put_many("l2", [late]) == 0


# --- through the wire ---------------------------------------------------------------------


def serve(shard: CacheShard, *ops: list) -> list:
    return decode_reply(shard.handle(encode_request(ops)), len(ops))


def test_the_new_ops_round_trip_through_handle() -> None:
    shard, _ = make(namespace_max={"l2": 2})
    rng = np.random.default_rng(10)
    a, b, c = unit(rng), unit(rng), unit(rng)
    stamp = Stamp(30, "w", NOW + 60)
    results = serve(
        shard,
        ["put_evicted", "l2", [vec_entry(BUCKET, t, v).to_list() for t, v in (("a", a),
                                                                            ("b", b))]],
        ["touch", "l2", [[BUCKET, "a"]]],
        ["put_evicted", "l2", [vec_entry(BUCKET, "c", c).to_list()]],
        ["nearest", "l2", BUCKET, "zz", "m1", a.astype("<f4").tobytes(), 2],
        ["nearest", "l2", BUCKET, "c", "m1", a.astype("<f4").tobytes(), 2],
        ["keys", "l2"],
        ["invalidate_scope", "l2", f"ns{SEP}", stamp.to_list()],
    )
    assert all(status == OK for status, _ in results), results
    first, touched, second, near, exact, keys, scope = (v for _, v in results)
    assert first == [2, []] and touched == 1 and second == [1, [[BUCKET, "b"]]]
    assert near[0] is None and [entries_from([e])[0].task for e, _ in near[1]] == ["a", "c"]
    assert near[1][0][1] == pytest.approx(1.0, abs=1e-5)
    assert entries_from([exact[0]])[0].task == "c" and exact[1] == []
    assert len(keys) == 2 and sorted(scope) == [[BUCKET, "a"], [BUCKET, "c"]]
    _, _, scopes = parse_dump(serve(shard, ["dump", "s0", Topology(
        "t", (ShardInfo("s0"),), 1).to_list()])[0][1])
    assert scopes == [("l2", f"ns{SEP}", stamp)]


@pytest.mark.parametrize("op", [
    ["nearest", "l2", BUCKET, None, "m1", b"\0\0\0", 2],  # not whole float32s
    ["nearest", "l2", BUCKET, None, "m1", b"", 2],
    ["nearest", "l2", BUCKET, None, "m1", b"\0" * 16, 100_000],
    ["nearest", "l2", BUCKET, None, 7, b"\0" * 16, 2],
    ["nearest", "l9", BUCKET, None, "m1", b"\0" * 16, 2],
    ["touch", "l2", [["only-agent"]]],
    ["invalidate_scope", "l2", "no-separator", [1, "w", NOW + 60]],
    ["keys"],
    ["put_evicted", "l2", [[1]]],
])
def test_a_bad_new_op_is_refused_and_the_others_still_run(op: list) -> None:
    shard, _ = make()
    results = serve(shard, op, ["ping"])
    assert results[0][0] == FAILED and isinstance(results[0][1], str)
    assert results[1] == (OK, "s0")


def test_a_dump_of_two_parts_from_an_older_shard_still_parses() -> None:
    entry = Entry("f", "t", Stamp(1, "w", NOW + 60), b"v")
    records, floors, scopes = parse_dump([[["l1", entry.to_list()]], []])
    assert records == [("l1", entry)] and floors == scopes == []
    with pytest.raises(WireError):
        parse_dump([[], [], [], []])


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["nearest", "touch", "keys", "put_evicted", "invalidate_scope"]),
       st.lists(st.none() | st.integers(-3, 300) | st.text(max_size=6) | st.binary(max_size=40)
                | st.lists(st.text(max_size=3) | st.binary(max_size=8), max_size=3),
                max_size=7))
def test_the_new_ops_answer_random_arguments_without_raising(name: str, args: list) -> None:
    shard, _ = make()
    shard.put_many("l2", [vec_entry(BUCKET, "a", unit(np.random.default_rng(0), 4))])
    data = msgpack.packb([WIRE_VERSION, [[name, *args]]], use_bin_type=True)
    [(status, _)] = decode_reply(shard.handle(data), 1)
    assert status in (OK, FAILED)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=80))
def test_random_bytes_as_a_vector_value_are_stored_and_never_compared(value: bytes) -> None:
    table = VectorTable()
    indexed = table.add(("l2", BUCKET, "t"), value)
    assert indexed == (len(table) == 1)
    if indexed:  # only a well-formed vector value: then its model and vector are what it says
        model, vector, _ = unpack_vector_value(value)
        assert model is not None and vector is not None
        assert table.nearest("l2", BUCKET, model, vector, 1)[0][0] == "t"
