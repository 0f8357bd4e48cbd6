"""`Arbiter`: serves peer calls for one fleet role, as a plain class (no Ray).

An arbiter is a named delegation engine of the fleet. It owns the node's shared parts, kept
in one *base* runtime (plan store, learner, provider registry, L4 library, circuit breakers,
L2 and L3), and serves each peer call with a runtime of its own around them: one VM per
request, so concurrent calls never share a VM, while what one call learns (plans, outcomes,
breakers) serves the next.

A peer call arrives as bytes (`cluster.peers_wire`): the arbiter refuses a symbol its own
policy marks sensitive (its answer would leave this node), rebuilds the caller's deadline on
its own clock, serves the call under the caller's hops with its own name added to the
visited set (so a call it federates further can never come back), and answers with the
value, or with why not: `unavailable`, `timeout`, `refused`, `error`, `bad-request`.

`advert()` says what it serves (the capabilities and routed names its own healthy models
offer, never what it would only forward), its local models, health, load and latency; the
actor sends it to the directory every heartbeat (`cluster.actors`).
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from cluster.errors import WireError
from cluster.federation import Federation as FleetFederation
from cluster.federation import FederationConfig
from cluster.peers import PeerTransport
from cluster.peers_wire import Advert, PeerReply, decode_request, encode_reply
from delegation.config import DelegationConfig, parse_config
from delegation.errors import (
    CallUnavailable,
    DelegationError,
    ProviderTimeout,
    ProviderUnavailable,
    SecurityViolation,
)
from delegation.federation import Federation, Hops, forwarded
from delegation.runtime import Runtime
from delegation.targets import LocalModel, RemoteModel
from rtfs.deadline import Deadline
from rtfs.errors import DeadlineExceeded, RtfsError
from storage import StorageError

LATENCY_WINDOW = 256  # recent calls whose median is advertised


@dataclass
class ArbiterStats:
    """What an arbiter has seen (every request counts, even one it could not decode)."""

    received: int = 0
    served: int = 0
    failed: int = 0
    refused: int = 0
    in_flight: int = 0


@dataclass(frozen=True)
class ArbiterSpec:
    """What an arbiter actor is built from (picklable: the configuration travels as text).

    `environ` holds only what the configuration needs from the environment (its providers'
    API keys, PATH for command models): the actor runs in a Ray worker, not in the process
    that asked for it. `state_dir` is the arbiter's own (its L2/L3 and local state).
    """

    name: str
    namespace: str
    config_text: str
    config_source: str
    base_dir: str
    state_dir: str
    environ: tuple[tuple[str, str], ...] = ()
    resources: tuple[tuple[str, float], ...] = ()


Stores = Callable[[DelegationConfig], tuple[Any, Any, Callable[[], None]]]
"""config -> (plan store, learner, close): the node's shared stores (None: local ones)."""


class Arbiter:
    """One fleet role's delegation engine, serving peer calls; thread-safe.

    Args:
        name: the arbiter's name in the fleet.
        base: the runtime holding the node's shared parts (the arbiter saves it on `close`).
        federation: the fleet's other arbiters, for calls this one cannot serve itself
            (None: it never forwards).
        max_concurrency: calls served at once (advertised: load is in-flight / this).
        heartbeat_s: how often the actor advertises (part of the advert).
        node, resources: where it runs (advertised).
        monotonic: the clock deadlines are rebuilt on; timer: latency clock.
    """

    def __init__(self, name: str, base: Runtime, *, federation: Federation | None = None,
                 max_concurrency: int = 8, heartbeat_s: float = 1.0, node: str = "",
                 resources: Mapping[str, float] | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        self.name = name
        self.base = base
        self.config = _request_config(base)
        self.federation = federation
        self.max_concurrency = max_concurrency
        self.heartbeat_s = heartbeat_s
        self.node = node
        self.resources = dict(resources or {})
        self._monotonic = monotonic
        self._timer = timer
        self._lock = threading.Lock()
        self.stats = ArbiterStats()
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)

    # --- serving --------------------------------------------------------------------------

    def handle(self, request: bytes) -> bytes:
        """Serve one peer call; the reply's bytes (never raises for the call's failure)."""
        started = self._timer()
        with self._lock:
            self.stats.received += 1
            self.stats.in_flight += 1
        reply = PeerReply(False, self.name, why="error", message="not served")
        try:
            reply = self._serve(request)
        finally:
            with self._lock:
                self.stats.in_flight -= 1
                self._latencies.append(self._timer() - started)
                if reply.ok:
                    self.stats.served += 1
                elif reply.why == "refused":
                    self.stats.refused += 1
                else:
                    self.stats.failed += 1
        return encode_reply(reply)

    def _serve(self, data: bytes) -> PeerReply:
        try:
            request = decode_request(data)
        except WireError as err:
            return self._error("bad-request", str(err))
        if self.config.security.is_sensitive(request.symbol):
            return self._error("refused", f"{request.symbol} is sensitive on this node: "
                                          "its answers are not served to other nodes")
        deadline = Deadline.after(request.budget_s, clock=self._monotonic)
        runtime = self.runtime()
        hops = Hops(request.hops.left, request.hops.visited | {self.name})
        try:
            with forwarded(hops):
                value = runtime.route_call(request.symbol, request.args, request.metadata,
                                           deadline=deadline, kind=request.kind)
        except (RtfsError, DelegationError, StorageError) as err:  # the call's own failure
            return self._error(*_classify(err))
        records = runtime.router.take_records()
        last = records[-1] if records else None
        return PeerReply(True, self.name, value, last.target if last else "",
                         last.layer if last else "", last.cost if last else 0.0)

    def runtime(self) -> Runtime:
        """A runtime for one request: its own VM around the node's shared parts."""
        base = self.base
        return Runtime(self.config, plans=base.plans, learner=base.learner,
                       registry=base.registry, library=base.library, health=base.health,
                       l2=base.l2, l3=base.l3, federation=self.federation, read_only=True,
                       monotonic=self._monotonic, timer=self._timer)

    def _error(self, why: str, message: str) -> PeerReply:
        return PeerReply(False, self.name, why=why, message=message)

    # --- advertising ----------------------------------------------------------------------

    def advert(self) -> Advert:
        """What this arbiter serves now and how it is doing: healthy unless every model of
        its own is unhealthy (one with none serves what it forwards, by its routes)."""
        serves, checked, unhealthy = self._serves()
        with self._lock:
            stats = replace(self.stats)
            latency_s = statistics.median(self._latencies) if self._latencies else 0.0
        if not checked:
            health = "no models of its own"
        elif unhealthy:
            health = f"{len(unhealthy)} of {checked} model(s) unhealthy: {'; '.join(unhealthy)}"
        else:
            health = f"{checked} model(s) healthy"
        return Advert(self.name, self.node, tuple(sorted(serves)),
                      tuple(self.base.registry.local_ids), len(unhealthy) < checked or
                      not checked, health, stats.in_flight, self.max_concurrency, latency_s,
                      stats.served, stats.failed, self.heartbeat_s,
                      tuple(sorted(self.resources.items())))

    def _serves(self) -> tuple[set[str], int, list[str]]:
        """The names its own healthy models serve (capabilities, and static routes to a
        model), how many of its models were checked, and why the unhealthy ones are not
        counted. A peer provider's capabilities are not advertised: they are another
        arbiter's to offer."""
        registry, health = self.base.registry, self.base.health
        status: dict[Any, str] = {}

        def ok(target: Any) -> bool:
            if target not in status:
                if (not isinstance(target, (LocalModel, RemoteModel)) or target not in registry
                        or hasattr(registry.get(target), "forward")):
                    status[target] = "-"  # runs in the VM, or a peer: not ours to offer
                else:
                    found = health(target)
                    status[target] = "ok" if found.ok else f"{target}: {found.reason}"
            return status[target] == "ok"

        serves = {cap for cap in registry.capabilities.capabilities()
                  if any(ok(t) for t in registry.capabilities.targets_for(cap))}
        for route in self.config.routes.routes:
            if not route.is_glob and ok(route.target):
                serves.add(route.pattern)
        for target in registry.targets():
            ok(target)  # every model's health is advertised, not only the routed ones
        checked = sum(v != "-" for v in status.values())
        return serves, checked, sorted(v for v in status.values() if v not in ("ok", "-"))

    def close(self) -> None:
        """Save what the base runtime owns (plans and outcomes it keeps locally, L2, L3)."""
        self.base.save()


def build_arbiter(spec: ArbiterSpec, node: str, transport: Callable[[float], PeerTransport],
                  stores: Stores) -> tuple[Arbiter, Callable[[], None]]:
    """The arbiter `spec` describes, running on `node` and reaching its peers through
    `transport(advert_ttl_s)`, and how to close it (save its state, then its stores).

    Raises:
        ConfigError: the configuration does not validate here.
    """
    environ = dict(spec.environ)
    config = parse_config(spec.config_text, source=spec.config_source,
                          base_dir=spec.base_dir, state_dir=spec.state_dir, environ=environ)
    settings = FederationConfig.from_sections(config.sections)
    federation = FleetFederation.for_config(config, transport(settings.advert_ttl_s),
                                            me=spec.name)
    plans, learner, close_stores = stores(config)
    base = Runtime(config, environ=environ, plans=plans, learner=learner,
                   federation=federation, warn=_log)
    arbiter = Arbiter(spec.name, base, federation=federation,
                      max_concurrency=settings.max_concurrency,
                      heartbeat_s=settings.heartbeat_s, node=node,
                      resources=dict(spec.resources))

    def close() -> None:
        arbiter.close()
        close_stores()

    return arbiter, close


def _log(message: str) -> None:
    print(f"arbiter: {message}", file=sys.stderr, flush=True)


def _request_config(base: Runtime) -> DelegationConfig:
    """The configuration per-request runtimes are built with: without L4 when the base has
    no library (a request must not try to open a store the node could not)."""
    config = base.config
    if config.enable_l4_cache and base.library is None:
        return replace(config, enable_l4_cache=False)
    return config


def _classify(err: RtfsError | DelegationError | StorageError) -> tuple[str, str]:
    """(why, message) of a call that failed on this arbiter."""
    text = f"{type(err).__name__}: {err}"
    if isinstance(err, (DeadlineExceeded, ProviderTimeout)):
        return "timeout", text
    if isinstance(err, SecurityViolation):
        return "refused", text
    if isinstance(err, (CallUnavailable, ProviderUnavailable, StorageError)):
        return "unavailable", text
    return "error", text
