"""Peers are providers: a peer arbiter reached through a provider of kind `rtfs-peer`.

    [delegation.remote_providers.gpu]
    kind = "rtfs-peer"
    arbiter = "gpu"            # the peer's arbiter name in the fleet
    timeout_s = 10             # longest wait for its answer (cut to the call's deadline)
    capabilities = ["embed"]   # what this node may send it by capability

A peer's target is `RemoteModel(<provider id>)`, so every rule for remote targets applies
unchanged: sensitive calls never go there, the security allow-list and level, breakers,
fallbacks, `--explain`. Peers found in the fleet's directory (`cluster.federation`) are the
same provider under the id `peer:<name>`.

`PeerProvider.forward(call)` sends the routed call itself (RTFS values, canonical msgpack;
`cluster.peers_wire`) with the hops it may still take, the arbiters it visited and what is
left of its deadline (shrinking at each hop), and returns the peer's value. `infer(prompt)`
asks the peer for one of its capabilities with the prompt as the argument, so a peer is a
`ModelProvider` like any other.

A `PeerTransport` moves the bytes: `InProcessPeers` here (tests, an embedded fleet), the Ray
one in `cluster.actors`. Transports raise the cluster's errors; this module, the edge
towards `delegation`, turns them into provider errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from cluster.errors import ArbiterTimeout, ArbiterUnavailable, ClusterError, WireError
from cluster.peers_wire import Advert, PeerReply, PeerRequest, decode_reply, encode_request
from delegation.errors import (
    ProviderError,
    ProviderInputError,
    ProviderTimeout,
    ProviderUnavailable,
)
from delegation.extensions import ProviderKindSpec
from delegation.federation import DEFAULT_MAX_HOPS, Hops, current_hops
from delegation.providers.base import BaseProvider, Health, ModelResult, effective_timeout
from delegation.schema import Option, OptionType
from rtfs.router import CallKind, RoutedCall
from rtfs.values import EMPTY_MAP, Keyword, Map

KIND = "rtfs-peer"
OPTIONS: Mapping[str, Option] = {
    "arbiter": Option(OptionType.STRING, required=True,
                      help="the peer arbiter's name in the fleet (`serve --arbiter NAME`)"),
    "max_hops": Option(OptionType.INTEGER, default=DEFAULT_MAX_HOPS, minimum=1, maximum=16,
                       help="hops a call that starts on this node may take"),
}

HOP_SHARE = 0.9
"""Of what the caller will wait, the share the peer gets for its own work: the rest carries
the reply back, so a peer that runs out of time answers "timeout" before its caller gives up
(and a chain of hops shrinks the deadline at each one)."""
HOP_MARGIN_S = 0.005


class PeerTransport(Protocol):
    """Moves peer calls to named arbiters and reads the fleet's adverts."""

    def call(self, arbiter: str, request: bytes, timeout_s: float) -> bytes:
        """Send `request` to `arbiter`; its reply bytes.

        Raises:
            ArbiterUnavailable: it is not there, died, or cannot be reached;
                `ArbiterTimeout` when it did not answer within `timeout_s`.
        """
        ...

    def adverts(self) -> Sequence[Advert]:
        """The adverts of the live arbiters (cached; never raises: none when the directory
        cannot be asked)."""
        ...


def hop_budget(wait_s: float) -> float:
    """The time a peer gets for a call its caller waits `wait_s` for."""
    return wait_s * HOP_SHARE - HOP_MARGIN_S


class PeerProvider(BaseProvider):
    """A peer arbiter as a provider (`rtfs-peer`); also a `CallForwarder`.

    Args:
        id: the provider id (`peer:<name>` for one found in the directory).
        arbiter: the peer's arbiter name.
        transport: how calls reach it.
        timeout_s: longest wait for an answer (cut to what the call's deadline leaves).
        max_hops: hops a call that starts here may take.
        origin: this node's name, sent along for the peer's records.
        capabilities, cost_per_call, timer: as for every provider.

    `infer(prompt, capability=None)` asks for `capability` (default: the first of
    `capabilities`) with the prompt as its one argument.
    """

    accepted_params = ("capability",)

    def __init__(self, id: str, arbiter: str, transport: PeerTransport, *,
                 timeout_s: float = 10.0, max_hops: int = DEFAULT_MAX_HOPS, origin: str = "",
                 capabilities: tuple[str, ...] = (), cost_per_call: float = 0.0,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        super().__init__(id, cost_per_call=cost_per_call, capabilities=capabilities,
                         timer=timer)
        self.arbiter = arbiter
        self.transport = transport
        self.timeout_s = timeout_s
        self.max_hops = max_hops
        self.origin = origin

    # --- CallForwarder --------------------------------------------------------------------

    def forward(self, call: RoutedCall) -> tuple[Any, float]:
        """Run `call` on the peer: `(value, cost)`."""
        reply = self._send(call.name, call.kind, call.args, call.metadata)
        return reply.value, reply.cost + self.cost_per_call

    # --- ModelProvider --------------------------------------------------------------------

    def infer(self, prompt: str, **params: Any) -> ModelResult:
        """Ask the peer for a capability, `prompt` as the argument."""
        text = self._check(prompt, params)
        capability = params.get("capability") or (self.capabilities[0] if self.capabilities
                                                   else None)
        if not isinstance(capability, str) or not capability:
            raise ProviderInputError(self.id, "no capability to ask the peer for (give "
                                              "capability=, or list capabilities)")
        started = self._timer()
        reply = self._send(capability, CallKind.CAPABILITY, (text,), EMPTY_MAP)
        value = to_plain(reply.value)
        shown = value if isinstance(value, str) else str(value)
        return self._result(shown, value, started)

    def health(self) -> Health:
        """From the fleet's adverts: healthy while the directory lists the peer as such."""
        for advert in self.transport.adverts():
            if advert.arbiter == self.arbiter:
                if not advert.healthy:
                    return Health(False, f"arbiter {self.arbiter}: {advert.health}")
                return Health(True, f"arbiter {self.arbiter} advertises "
                                    f"{len(advert.serves)} capabilities")
        return Health(False, f"arbiter {self.arbiter} is not in the fleet's directory (not "
                             "started, silent for two heartbeats, or this process is not "
                             "connected to the fleet: --cluster)")

    # --- the call -------------------------------------------------------------------------

    def _send(self, symbol: str, kind: CallKind, args: tuple[Any, ...], metadata: Map
              ) -> PeerReply:
        hops = self._hops()
        wait_s = effective_timeout(self.timeout_s)
        budget_s = hop_budget(wait_s)
        if budget_s <= 0:
            raise ProviderTimeout(self.id, f"{wait_s * 1e3:.0f} ms left: too little to ask "
                                           f"arbiter {self.arbiter}")
        try:
            request = encode_request(PeerRequest(symbol, kind, args, metadata,
                                                 Hops(hops.left - 1, hops.visited),
                                                 budget_s, self.origin))
        except TypeError as err:
            raise ProviderInputError(self.id, str(err)) from None
        try:
            reply = decode_reply(self.transport.call(self.arbiter, request, wait_s))
        except ArbiterTimeout as err:
            raise ProviderTimeout(self.id, str(err)) from None
        except ArbiterUnavailable as err:
            raise ProviderUnavailable(self.id, str(err)) from None
        except WireError as err:
            raise ProviderError(self.id, f"arbiter {self.arbiter}: {err}") from None
        if not reply.ok:
            raise _reply_error(self.id, reply)
        return reply

    def _hops(self) -> Hops:
        """The call's hops, refusing a loop or one hop too many before anything is sent."""
        hops = current_hops(self.max_hops)
        if self.arbiter in hops.visited:
            raise ProviderUnavailable(self.id, f"arbiter {self.arbiter} already had this call "
                                               f"(visited {', '.join(sorted(hops.visited))}): "
                                               "not sending it round a loop")
        if hops.left <= 0:
            raise ProviderUnavailable(self.id, "hop limit reached (visited "
                                               f"{', '.join(sorted(hops.visited))})")
        return hops


def provider_kind(transport: Callable[[], PeerTransport]) -> ProviderKindSpec:
    """The `rtfs-peer` provider kind, its peers reached through `transport()` (called when
    a provider is built: the Ray one by the extension, an in-process one in tests)."""

    def build(cfg: Any, ctx: Any) -> PeerProvider:
        return PeerProvider(cfg.id, str(cfg.options["arbiter"]), transport(),
                            timeout_s=cfg.timeout_s, max_hops=int(cfg.options["max_hops"]),
                            capabilities=cfg.capabilities, cost_per_call=cfg.cost_per_call,
                            timer=ctx.timer)

    return ProviderKindSpec(KIND, OPTIONS, build)


def _reply_error(provider_id: str, reply: PeerReply) -> Exception:
    message = f"arbiter {reply.arbiter}: {reply.message}"
    if reply.why == "timeout":
        return ProviderTimeout(provider_id, message)
    if reply.why == "unavailable":
        return ProviderUnavailable(provider_id, message)
    return ProviderError(provider_id, f"{reply.why}: {message}")


def to_plain(value: Any) -> Any:
    """An RTFS value as the plain data a `ModelResult` holds (keywords as their names)."""
    if isinstance(value, Keyword):
        return value.name
    if isinstance(value, Map):
        return {to_plain(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [to_plain(v) for v in value]
    return value


class InProcessPeers:
    """A `PeerTransport` to arbiters in this process, through a directory in this process
    (tests and the benchmark's yardstick; the Ray transport is `cluster.actors`)."""

    def __init__(self, directory: Any, arbiters: Mapping[str, Any] | None = None) -> None:
        self.directory = directory
        self.arbiters: dict[str, Any] = dict(arbiters or {})
        self.down: set[str] = set()
        self.requests: list[str] = []

    def add(self, arbiter: Any) -> None:
        self.arbiters[arbiter.name] = arbiter

    def call(self, arbiter: str, request: bytes, timeout_s: float) -> bytes:
        self.requests.append(arbiter)
        found = self.arbiters.get(arbiter)
        if found is None or arbiter in self.down:
            raise ArbiterUnavailable(arbiter, "no such arbiter in this process")
        return bytes(found.handle(request))

    def adverts(self) -> Sequence[Advert]:
        try:
            return [Advert.from_list(a) for a in self.directory.arbiters()]
        except ClusterError:
            return []
