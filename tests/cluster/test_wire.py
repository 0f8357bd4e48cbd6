"""The shard wire format: every op through `CacheShard.handle`, and decoders fuzzed with
random bytes and random msgpack values (they return or raise `WireError`, nothing else)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.client import InProcessTransport, ShardClient
from cluster.errors import ShardUnavailable, WireError
from cluster.shard import CacheShard, ShardStats, parse_dump
from cluster.topology import ShardInfo, Topology
from cluster.wire import (
    FAILED,
    OK,
    WIRE_VERSION,
    Entry,
    Stamp,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
    entries_from,
)
from delegation.testing import FakeClock

NOW = 1_700_000_000.0
STAMP = [7, "w", NOW + 60]

msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=8) | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=20,
)


def serve(*ops: list) -> list[tuple[int, Any]]:
    shard = CacheShard("s0", clock=FakeClock(NOW))
    shard.put_many("l1", [Entry("f", "t", Stamp(1, "w", NOW + 60), b"plan")])
    return decode_reply(shard.handle(encode_request(ops)), len(ops))


def test_every_op_round_trips_through_handle() -> None:
    topology = Topology("t", (ShardInfo("s0"), ShardInfo("s1")), 2).to_list()
    entry = ["g", "u", 2, "w", NOW + 60, b"other"]
    results = serve(["ping"], ["get", "l1", [["f", "t"], ["f", "x"]]], ["agents", "l1", ["f"]],
                    ["put", "l1", [entry]], ["invalidate", "l1", "f", "t", STAMP],
                    ["invalidate_agent", "l1", "g", STAMP], ["stats"],
                    ["dump", "s1", topology], ["clear"], ["get", "l1", [["g", "u"]]])
    assert all(status == OK for status, _ in results), results
    ping, got, agents, put, inv, inv_agent, stats, dump, cleared, after = (v for _, v in results)
    assert ping == "s0"
    assert entries_from([got[0]])[0].value == b"plan" and got[1] is None
    assert [e.task for e in entries_from(agents[0])] == ["t"]
    assert (put, inv, inv_agent) == (1, True, 1)
    assert ShardStats.from_list(stats).tombstones == 1
    records, floors, scopes = parse_dump(dump)  # s1 replicates every agent (R = 2)
    assert {(e.agent, e.value) for _, e in records} == {("f", None)}
    assert [(ns, agent) for ns, agent, _ in floors] == [("l1", "g")] and scopes == []
    assert (cleared, after) == (0, [None])  # g's value went with its floor; f's was a tombstone


@pytest.mark.parametrize("op", [
    ["nope"], ["get", "l9", []], ["get", "l1", [["f"]]], ["put", "l1", [["f", "t", 1]]],
    ["put", "l1", [["f", "t", True, "w", NOW, b"x"]]], ["invalidate", "l1", "f", "t", [1, 2]],
    ["agents", "l1", [1]], ["stats", "extra"], ["dump", "s1", ["t", 5, []]],
    ["put", "l1", [["f", "t", 1, "w", float("nan"), b"x"]]],
])
def test_a_bad_op_is_refused_and_the_others_still_run(op: list) -> None:
    results = serve(op, ["ping"])
    assert results[0][0] == FAILED and isinstance(results[0][1], str)
    assert results[1] == (OK, "s0")


def test_an_undecodable_request_gets_one_error_result() -> None:
    shard = CacheShard("s0")
    for data in (b"", b"\xc1", msgpack.packb([99, []]), msgpack.packb([WIRE_VERSION, [[1]]])):
        [(status, message)] = decode_reply(shard.handle(data), 1)
        assert status == FAILED and "request" in message


def test_replies_must_match_the_request() -> None:
    good = encode_reply([(OK, 1), (FAILED, "no")])
    assert decode_reply(good, 2) == [(OK, 1), (FAILED, "no")]
    with pytest.raises(WireError, match="2 results for 3 ops"):
        decode_reply(good, 3)
    with pytest.raises(WireError, match="wire version"):
        decode_reply(msgpack.packb([WIRE_VERSION + 1, [[0, 1]]]), 1)
    with pytest.raises(WireError, match="status"):
        decode_reply(msgpack.packb([WIRE_VERSION, [[True, 1]]]), 1)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_decoders_survive_random_bytes(data: bytes) -> None:
    for decode in (lambda d: decode_reply(d, 1), decode_request):
        try:
            decode(data)
        except WireError:
            pass


@settings(max_examples=200, deadline=None)
@given(msgpack_values, st.integers(0, 3))
def test_decoders_survive_random_msgpack_values(value: object, expected: int) -> None:
    data = msgpack.packb(value, use_bin_type=True)
    framed = msgpack.packb([WIRE_VERSION, value], use_bin_type=True)
    for payload in (data, framed):
        for decode in (lambda d: decode_reply(d, expected), decode_request):
            try:
                decode(payload)
            except WireError:
                pass
        try:
            entries_from(value)
            parse_dump(value)
        except WireError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(msgpack_values, min_size=1, max_size=4), max_size=4))
def test_the_shard_answers_random_ops_without_raising(ops: list) -> None:
    shard = CacheShard("s0")
    reply = decode_reply(shard.handle(msgpack.packb([WIRE_VERSION, ops], use_bin_type=True)),
                         len(ops) if all(op and isinstance(op[0], str) for op in ops) else 1)
    assert all(status in (OK, FAILED) for status, _ in reply)


class GarbageTransport:
    """Answers every request with bytes that are not a reply."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply

    def call_many(self, requests, timeout_s):
        return {name: self.reply for name in requests}

    def close(self) -> None:
        pass


@pytest.mark.parametrize("reply", [b"", b"\x00garbage", msgpack.packb([WIRE_VERSION, [[0]]])])
def test_an_undecodable_reply_is_reported_and_the_shard_rests(reply: bytes) -> None:
    clock = FakeClock(0.0)
    client = ShardClient(Topology("t", (ShardInfo("s0"),)), GarbageTransport(reply),
                         timer=clock)
    [(_, result)] = client.send({"s0": [["ping"]]}).items()
    assert isinstance(result, WireError)
    assert not client.is_up("s0") and client.stats().bad_replies == 1
    clock.advance(client.cooldown_s)
    assert client.is_up("s0")


def test_the_in_process_transport_reports_an_unknown_shard() -> None:
    transport = InProcessTransport({})
    [(_, reply)] = transport.call_many({"ghost": encode_request([["ping"]])}, 1.0).items()
    assert isinstance(reply, ShardUnavailable) and reply.shard == "ghost"
