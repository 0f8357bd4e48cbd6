"""Federation: a call that cannot run on this node goes to a peer arbiter that can.

`delegation` defines the seam and never imports `cluster`, which implements it:

- `Federation` finds peers that advertise a call's symbol (ranked: health, latency, load) and
  provides the peer providers it discovered.
- `FederatingEngine` wraps the engine. Only a decision that is *unavailable* here (no
  provider, an open circuit, a missing model), never one security *refused*, is sent to a
  peer; the peer's target is a `RemoteModel`, so the security context is checked again on it
  (sensitive calls never federate, the allow-lists, the security level). A federated decision
  is decided by `Layer.FEDERATION`, which is never cached as an L1 plan; federated outcomes
  feed the learner and breakers, and a peer the learner would suggest is chosen afresh by
  the federation instead (so no plan ever names one because of them).
- `Hops` travels with a forwarded call: how many more hops it may take and the arbiters it
  has visited, so that no call loops. An arbiter serving a peer call sets it with `forwarded`
  for the call's duration; the engine and the peer providers read it.
- `CallForwarder` is a provider that takes the routed call itself (RTFS values, not a
  prompt); the executor hands such providers the call.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

from delegation.config import SecurityConfig
from delegation.context import CallContext
from delegation.engine import Decision, Engine, HealthCheck, Layer, security_problem
from delegation.targets import ExecTarget, LocalPure, RemoteModel, peer_name
from rtfs.router import RoutedCall

DEFAULT_MAX_HOPS = 3


@dataclass(frozen=True, slots=True)
class Hops:
    """Where a forwarded call has been: `left` more hops allowed, `visited` arbiter names."""

    left: int
    visited: frozenset[str] = frozenset()

    def through(self, arbiter: str) -> Hops:
        """The hops of the call as the arbiter `arbiter` forwards it on."""
        return Hops(self.left - 1, self.visited | {arbiter})


_hops: contextvars.ContextVar[Hops | None] = contextvars.ContextVar("federation_hops",
                                                                    default=None)


@contextlib.contextmanager
def forwarded(hops: Hops) -> Iterator[None]:
    """Serve a forwarded call with `hops` (what it arrived with, this arbiter added)."""
    token = _hops.set(hops)
    try:
        yield
    finally:
        _hops.reset(token)


def current_hops(max_hops: int = DEFAULT_MAX_HOPS) -> Hops:
    """The hops of the call being served on this thread; a call that started here may take
    `max_hops` and has visited nothing."""
    found = _hops.get()
    return found if found is not None else Hops(max_hops)


@dataclass(frozen=True, slots=True)
class PeerChoice:
    """A peer that can serve a call: its target and why it was chosen (for `--explain`)."""

    target: RemoteModel
    why: str


class Federation(Protocol):
    """The fleet's peer arbiters, as the engine sees them (implemented in `cluster`)."""

    max_hops: int
    """Hops a call that starts on this node may take."""

    def choose(self, symbol: str, hops: Hops) -> Sequence[PeerChoice]:
        """Peers that advertise `symbol`, best first (at most a few), none of them in
        `hops.visited`; empty when `hops.left` is used up or none can serve. Never raises:
        a directory that cannot be asked is no peers."""
        ...

    def provider(self, target: ExecTarget) -> Any:
        """The provider of a peer target this federation discovered (a `ModelProvider` that
        is also a `CallForwarder`), or None when `target` is not one of its peers."""
        ...

    def is_peer(self, target: ExecTarget | None) -> bool:
        """Whether `target` is a peer arbiter (discovered, or a declared peer provider)."""
        ...


@runtime_checkable
class CallForwarder(Protocol):
    """A provider that runs the routed call itself, with its RTFS values, on another node."""

    def forward(self, call: RoutedCall) -> tuple[Any, float]:
        """`(value, cost)` of running `call` there; waits at most the call's deadline.

        Raises:
            ProviderUnavailable (ProviderTimeout): the peer cannot serve now, or in time.
            ProviderError: the peer answered with an error.
            ProviderInputError: an argument cannot be sent (a function, say).
        """
        ...


class FederatedProviders:
    """The providers as the executor and the health monitor see them with a federation: the
    registry's, then the peers the federation discovered."""

    def __init__(self, registry: Any, federation: Federation) -> None:
        self.registry = registry
        self.federation = federation

    def get(self, target: ExecTarget) -> Any:
        if isinstance(target, RemoteModel) and peer_name(target.id) is not None:
            found = self.federation.provider(target)
            if found is not None:
                return found
        return self.registry.get(target)

    def __contains__(self, target: object) -> bool:
        return target in self.registry or (
            isinstance(target, RemoteModel) and self.federation.provider(target) is not None)


class FederatingEngine:
    """Sends calls that cannot run here to a peer arbiter that advertises them.

    Args:
        inner: the engine (usually Resilient(SecurityAware(Static))).
        federation: finds and ranks the peers.
        security: the security context every federated target must pass.
        health: the targets' health (circuit breakers first); None: not checked.
    """

    def __init__(self, inner: Engine, federation: Federation, security: SecurityConfig,
                 health: HealthCheck | None = None) -> None:
        self.inner = inner
        self.federation = federation
        self.security = security
        self.health = health

    def decide(self, ctx: CallContext) -> Decision:
        decision = self.inner.decide(ctx)
        why_here = _cannot_run_here(ctx, decision)
        if why_here is None and decision.layer is Layer.LEARNED and self.federation.is_peer(
                decision.target):
            # Outcomes of federated calls teach the learner, but which peer serves a call
            # is chosen afresh each time (a learned peer would be cached as an L1 plan), and
            # when none may be, the call does not go there either.
            why_here = f"nothing on this node provides {ctx.symbol}"
            decision = Decision(None, Layer.UNAVAILABLE, why_here, replaced=decision)
        if why_here is None:
            return decision
        # Asked before any peer is looked up: a call that may not leave this node costs the
        # directory nothing and no peer ever hears of it.
        refused = self._refused(ctx)
        if refused is not None:
            return _not_federated(decision, refused)
        hops = current_hops(self.federation.max_hops)
        if hops.left <= 0:
            visited = ", ".join(sorted(hops.visited))
            return _not_federated(decision, f"hop limit reached (visited {visited})")
        choices = self.federation.choose(ctx.symbol, hops)
        usable, skipped = self._usable(ctx, choices)
        if not usable:
            return _not_federated(decision, skipped if choices else
                                  f"no peer advertises {ctx.symbol}")
        best = usable[0]
        fallback = usable[1].target if len(usable) > 1 else None
        return Decision(best.target, Layer.FEDERATION, f"{why_here}; federated to {best.why}",
                        0.5, fallback=fallback, replaced=decision)

    def _refused(self, ctx: CallContext) -> str | None:
        """Why no peer at all may get this call (sensitive, security level), or None."""
        if ctx.sensitive:
            return f"{ctx.symbol} is sensitive and never leaves this node"
        return self.security.remote_needs_route(False, False)

    def _usable(self, ctx: CallContext, choices: Sequence[PeerChoice]
                ) -> tuple[list[PeerChoice], str]:
        usable, skipped = [], []
        for choice in choices:
            problem = security_problem(self.security, ctx, choice.target, Layer.FEDERATION)
            if problem is None and self.health is not None:
                status = self.health(choice.target)
                problem = None if status.ok else f"{choice.target} {status.reason}"
            if problem is None:
                usable.append(choice)
            else:
                skipped.append(problem)
        return usable, "; ".join(skipped)


def _not_federated(decision: Decision, why: str) -> Decision:
    return replace(decision, reason=f"{decision.reason}; not federated: {why}")


def _cannot_run_here(ctx: CallContext, decision: Decision) -> str | None:
    """Why `decision` cannot serve the call on this node, or None when it can (or when
    security refused it: a refused call is never federated)."""
    if decision.layer is Layer.UNAVAILABLE:
        return decision.reason
    if (decision.layer is Layer.DEFAULT and isinstance(decision.target, LocalPure)
            and not ctx.has_source):
        return f"nothing on this node provides {ctx.symbol}"
    return None
