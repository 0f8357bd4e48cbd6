"""The peer wire: RTFS values cross as canonical msgpack, and the decoders trust nothing."""

from __future__ import annotations

import random

import pytest

from cluster.errors import WireError
from cluster.peers_wire import (
    Advert,
    PeerReply,
    PeerRequest,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
)
from delegation.federation import Hops
from rtfs.reader import form_to_value, read
from rtfs.router import CallKind
from rtfs.values import EMPTY_MAP, Keyword, Map


def rtfs(text: str) -> object:
    return form_to_value(read(text)[0])


ARGS = (rtfs('{:a [1 2.5 "three" #{:x :y}] :b (quote (f x)) :big 123456789012345678901234567890}'),
        "plain text", -7, 0.5, None, True, Keyword("k"))


def test_a_request_round_trips_with_its_values_hops_and_budget() -> None:
    request = PeerRequest("summarize", CallKind.FUNCTION, ARGS,
                          Map({Keyword("complexity"): Keyword("high")}),
                          Hops(2, frozenset({"a", "b"})), 1.25, "node-a")
    back = decode_request(encode_request(request))
    assert back == request
    assert type(back.args[2]) is int and type(back.args[3]) is float  # kept distinct


def test_an_argument_with_no_canonical_form_is_named() -> None:
    request = PeerRequest("f", CallKind.FUNCTION, (1, object()), EMPTY_MAP, Hops(1), 1.0)
    with pytest.raises(TypeError, match="argument 2 cannot be sent to a peer"):
        encode_request(request)


def test_replies_round_trip_and_a_value_that_cannot_travel_is_an_error() -> None:
    ok = PeerReply(True, "b", ARGS[0], "LocalModel(x)", "capability", 0.25)
    assert decode_reply(encode_reply(ok)) == ok
    error = PeerReply(False, "b", why="timeout", message="deadline exceeded")
    assert decode_reply(encode_reply(error)) == error
    odd = decode_reply(encode_reply(PeerReply(True, "b", object())))
    assert not odd.ok and odd.why == "error" and "cannot be sent back" in odd.message


@pytest.mark.parametrize("data, words", [
    (b"", "malformed msgpack"),
    (b"\x81\xa1a\x01", "malformed msgpack"),  # a map: never in canonical msgpack
    (encode_reply(PeerReply(True, "b", 1)), "not a peer call"),
    (b"\x92\x02\xa4call", "format 2"),
    (encode_request(PeerRequest("f", CallKind.FUNCTION, (), EMPTY_MAP, Hops(1), 1.0))
     .replace(b"function", b"functio\xff"), "malformed msgpack"),
])
def test_a_malformed_request_is_a_wire_error(data: bytes, words: str) -> None:
    with pytest.raises(WireError, match=words):
        decode_request(data)


def test_fuzzed_messages_decode_or_raise_a_wire_error_only() -> None:
    rng = random.Random(20240611)
    seeds = [encode_request(PeerRequest("x", CallKind.CAPABILITY, ARGS, EMPTY_MAP, Hops(3),
                                        2.0, "o")),
             encode_reply(PeerReply(True, "b", ARGS[0], "t", "l", 0.0)),
             encode_reply(PeerReply(False, "b", why="refused", message="no"))]
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(3)
            at = rng.randrange(len(data))
            if op == 0:
                data[at] = rng.randrange(256)
            elif op == 1:
                del data[at:at + rng.randint(1, 8)]
            else:
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        for decode in (decode_request, decode_reply):
            try:
                decode(bytes(data))
            except WireError:
                pass


def test_an_advert_round_trips_and_reports_its_load() -> None:
    advert = Advert("gpu", "node-1", ("embed", "x"), ("m",), True, "1 model(s) healthy", 3, 4,
                    0.002, 10, 1, 0.5, (("gpu", 1.0),), 12.5)
    assert Advert.from_list(advert.to_list()) == advert and advert.load == 0.75
    with pytest.raises(WireError):
        Advert.from_list(advert.to_list()[:-1])
