"""What peer arbiters say to each other: calls, replies and adverts, as canonical msgpack.

A peer call carries RTFS values (`rtfs.canonical`), never prompt text:

    request  [FORMAT, "call", kind, symbol, [arg, ...], metadata, hops_left, [visited, ...],
              budget_s, origin]
    reply    [FORMAT, "ok", value, arbiter, target, layer, cost]
             [FORMAT, "error", why, message, arbiter]        why: one of `ERROR_KINDS`

`budget_s` is what is left of the caller's deadline when the request leaves (monotonic
clocks differ between hosts: a deadline crosses as seconds left, and the serving side
rebuilds it on its own clock). `hops_left` and `visited` keep a forwarded call from looping.

An advert is what an arbiter tells the directory on each heartbeat (a list, see `Advert`).
Decoding trusts nothing: anything malformed raises `WireError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cluster.errors import WireError
from delegation.federation import Hops
from rtfs.canonical import packb, plain_to_value, unpackb, value_to_plain
from rtfs.errors import BytecodeError
from rtfs.router import CallKind
from rtfs.values import EMPTY_MAP, Map

FORMAT = 1
MAX_MESSAGE_BYTES = 16 << 20
MAX_HOPS = 16
ERROR_KINDS = ("unavailable", "timeout", "refused", "error", "bad-request")
ARBITER_PREFIX = "arbiter-"


def arbiter_actor_name(arbiter: str) -> str:
    """The Ray actor name of the arbiter `arbiter` (in the fleet's namespace)."""
    return f"{ARBITER_PREFIX}{arbiter}"


@dataclass(frozen=True)
class PeerRequest:
    """One call forwarded to a peer arbiter."""

    symbol: str
    kind: CallKind
    args: tuple[Any, ...]
    metadata: Map
    hops: Hops
    budget_s: float
    origin: str = ""


@dataclass(frozen=True)
class PeerReply:
    """A peer's answer: `value` (ok), or `why` and `message` (an error), and who served it:
    the arbiter, and the target and layer its own engine chose."""

    ok: bool
    arbiter: str
    value: Any = None
    target: str = ""
    layer: str = ""
    cost: float = 0.0
    why: str = ""
    message: str = ""


def encode_request(request: PeerRequest) -> bytes:
    """The request's bytes; raises `TypeError` naming an argument with no canonical form
    (a function, say): such a call cannot leave this node."""
    args = []
    for i, arg in enumerate(request.args, 1):
        try:
            args.append(value_to_plain(arg))
        except TypeError as err:
            raise TypeError(f"argument {i} cannot be sent to a peer: {err}") from None
    return packb([FORMAT, "call", str(request.kind), request.symbol, args,
                  value_to_plain(request.metadata), request.hops.left,
                  sorted(request.hops.visited), float(request.budget_s), request.origin])


def decode_request(data: bytes) -> PeerRequest:
    """Inverse of `encode_request`; raises `WireError`."""
    plain = _unpack(data, "peer request")
    _expect(len(plain) == 10 and plain[1] == "call", "peer request", "not a peer call")
    _, _, kind, symbol, args, meta, left, visited, budget_s, origin = plain
    _expect(kind in {k.value for k in CallKind}, "peer request", f"unknown kind {kind!r}")
    _expect(isinstance(symbol, str) and bool(symbol), "peer request", "no symbol")
    _expect(isinstance(args, list), "peer request", "arguments must be a list")
    _expect(type(left) is int and 0 <= left <= MAX_HOPS, "peer request", "bad hop count")
    _expect(isinstance(visited, list) and all(isinstance(v, str) for v in visited),
            "peer request", "visited must be a list of names")
    _expect(_finite(budget_s) and budget_s > 0, "peer request", "budget_s must be > 0")
    _expect(isinstance(origin, str), "peer request", "origin must be a string")
    values = _values(args, "peer request")
    metadata = _value(meta, "peer request") if meta is not None else EMPTY_MAP
    _expect(isinstance(metadata, Map), "peer request", "metadata must be a map")
    return PeerRequest(symbol, CallKind(kind), tuple(values), metadata,
                       Hops(left, frozenset(visited)), float(budget_s), origin)


def encode_reply(reply: PeerReply) -> bytes:
    """The reply's bytes; a value with no canonical form becomes an error reply."""
    if not reply.ok:
        return packb([FORMAT, "error", reply.why, reply.message, reply.arbiter])
    try:
        value = value_to_plain(reply.value)
    except TypeError as err:
        return encode_reply(PeerReply(False, reply.arbiter, why="error",
                                      message=f"the value cannot be sent back: {err}"))
    return packb([FORMAT, "ok", value, reply.arbiter, reply.target, reply.layer,
                  float(reply.cost)])


def decode_reply(data: bytes) -> PeerReply:
    """Inverse of `encode_reply`; raises `WireError`."""
    plain = _unpack(data, "peer reply")
    if len(plain) == 5 and plain[1] == "error":
        _, _, why, message, arbiter = plain
        _expect(why in ERROR_KINDS, "peer reply", f"unknown error kind {why!r}")
        _expect(isinstance(message, str) and isinstance(arbiter, str), "peer reply",
                "malformed error")
        return PeerReply(False, arbiter, why=why, message=message)
    _expect(len(plain) == 7 and plain[1] == "ok", "peer reply", "neither ok nor error")
    _, _, value, arbiter, target, layer, cost = plain
    _expect(all(isinstance(x, str) for x in (arbiter, target, layer)), "peer reply",
            "malformed names")
    _expect(_finite(cost) and cost >= 0, "peer reply", "bad cost")
    return PeerReply(True, arbiter, _value(value, "peer reply"), target, layer, float(cost))


@dataclass(frozen=True)
class Advert:
    """What an arbiter can serve and how it is doing, sent to the directory each heartbeat.

    Attributes:
        arbiter: its name (the actor is `arbiter-<name>` in the fleet's namespace).
        node: the Ray node it runs on ("" unknown).
        serves: the capabilities and function names its own models serve.
        models: its local model ids.
        healthy, health: whether it serves calls now, and what its models' health says.
        in_flight, max_concurrency: its load.
        latency_s: median time of its recent calls (0 before the first).
        served, failed: calls answered, and of those how many with an error.
        heartbeat_s: how often it advertises (the directory drops it after two silent ones).
        resources: the Ray resources it was placed with.
        seen_at: when the directory last heard from it (the directory's clock).
    """

    arbiter: str
    node: str = ""
    serves: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    healthy: bool = True
    health: str = ""
    in_flight: int = 0
    max_concurrency: int = 1
    latency_s: float = 0.0
    served: int = 0
    failed: int = 0
    heartbeat_s: float = 1.0
    resources: tuple[tuple[str, float], ...] = ()
    seen_at: float = 0.0

    @property
    def load(self) -> float:
        """In-flight calls per slot (1.0: every slot busy)."""
        return self.in_flight / max(1, self.max_concurrency)

    def to_list(self) -> list[Any]:
        return [FORMAT, self.arbiter, self.node, list(self.serves), list(self.models),
                self.healthy, self.health, self.in_flight, self.max_concurrency,
                self.latency_s, self.served, self.failed, self.heartbeat_s,
                [[k, v] for k, v in self.resources], self.seen_at]

    @classmethod
    def from_list(cls, data: Any) -> Advert:
        """Inverse of `to_list`; raises `WireError`."""
        _expect(isinstance(data, (list, tuple)) and len(data) == 15 and data[0] == FORMAT,
                "advert", "not an advert of this format")
        (_, arbiter, node, serves, models, healthy, health, in_flight, slots, latency_s,
         served, failed, heartbeat_s, resources, seen_at) = data
        _expect(isinstance(arbiter, str) and bool(arbiter) and isinstance(node, str)
                and isinstance(health, str), "advert", "malformed names")
        _expect(_strings(serves) and _strings(models), "advert", "malformed lists")
        _expect(isinstance(healthy, bool), "advert", "healthy must be a boolean")
        counts = (in_flight, slots, served, failed)
        _expect(all(type(n) is int and n >= 0 for n in counts) and slots >= 1, "advert",
                "malformed counts")
        _expect(all(_finite(x) and x >= 0 for x in (latency_s, seen_at)), "advert",
                "malformed times")
        _expect(_finite(heartbeat_s) and heartbeat_s > 0, "advert", "heartbeat_s must be > 0")
        _expect(isinstance(resources, (list, tuple)) and all(
            isinstance(r, (list, tuple)) and len(r) == 2 and isinstance(r[0], str)
            and _finite(r[1]) for r in resources), "advert", "malformed resources")
        return cls(arbiter, node, tuple(serves), tuple(models), healthy, health, in_flight,
                   slots, float(latency_s), served, failed, float(heartbeat_s),
                   tuple((str(k), float(v)) for k, v in resources), float(seen_at))


def _unpack(data: bytes, what: str) -> list[Any]:
    if not isinstance(data, (bytes, bytearray)):
        raise WireError(what, f"expected bytes, not {type(data).__name__}")
    if len(data) > MAX_MESSAGE_BYTES:
        raise WireError(what, f"{len(data)} bytes is over the {MAX_MESSAGE_BYTES} limit")
    try:
        plain = unpackb(bytes(data))
    except BytecodeError as err:
        raise WireError(what, str(err)) from None
    _expect(isinstance(plain, list) and len(plain) >= 2, what, "not a message")
    _expect(plain[0] == FORMAT, what, f"format {plain[0]!r}, this side speaks {FORMAT}")
    return plain


def _values(plain: list[Any], what: str) -> list[Any]:
    return [_value(item, what) for item in plain]


def _value(plain: Any, what: str) -> Any:
    try:
        return plain_to_value(plain)
    except (BytecodeError, RecursionError) as err:
        raise WireError(what, f"not an RTFS value: {err}") from None


def _expect(condition: bool, what: str, reason: str) -> None:
    if not condition:
        raise WireError(what, reason)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
        value)


def _strings(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value)
