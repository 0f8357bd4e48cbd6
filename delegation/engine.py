"""Deciding where a call runs.

`StaticDelegationEngine.decide(ctx)` follows the seed's order and says which layer decided:

    explicit hint > static exact route > static glob route > L3 (a declared context and a
    choice among allowed targets) > L1 plan cache > call metadata > capability registry
    > L4 (published by name, no local source) > learned scores
    > the configured default (LocalPure unless configured otherwise)

Wrappers compose on top, each with the same `decide`, as
`Resilient(SecurityAware(Static))`: `SecurityAwareDelegationEngine` makes sure a sensitive
call, or a provider outside the allow-list, never reaches a remote provider (it replaces such
a target with a local fallback or refuses the call, and withholds remote fallbacks), and then
`ResilientDelegationEngine` replaces a target that is unhealthy (health check or open circuit)
with the fallback that is left, or says why nothing can serve. With a fleet,
`delegation.federation.FederatingEngine` goes around all of them and sends a call that is
unavailable here (never one security refused) to a peer arbiter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol

from cachetools import LRUCache

from delegation.config import DelegationConfig, SecurityConfig
from delegation.context import CallContext
from delegation.errors import DelegationError
from delegation.l3.cache import ContextualCache
from delegation.metadata import Complexity
from delegation.planstore import PlanStore
from delegation.providers.base import Health
from delegation.targets import (
    LOCAL_PURE,
    ExecTarget,
    L4CacheHit,
    LocalModel,
    LocalPure,
    RemoteModel,
    resolve_target_name,
)
from rtfs.values import DelegationHint, HintKind
from storage import StorageError


class Layer(StrEnum):
    """Which part of the engine made a decision."""

    HINT = "hint"
    STATIC_EXACT = "static-exact"
    STATIC_GLOB = "static-glob"
    L1 = "l1-cache"
    L3 = "l3-context"
    METADATA = "metadata"
    CAPABILITY = "capability"
    L4 = "l4"
    LEARNED = "learned"
    DEFAULT = "default"
    FALLBACK = "fallback"
    SECURITY = "security"
    UNAVAILABLE = "unavailable"
    FEDERATION = "federation"  # sent to a peer arbiter (`delegation.federation`)


# Layers whose decisions are worth caching as L1 plans (the others are cheaper to redo -- the
# L4 layer is itself a cached lookup -- or, for fallback/security/unavailable/federation, must
# never be cached: a federated decision depends on which peers are alive now).
CACHEABLE_LAYERS = frozenset({Layer.METADATA, Layer.CAPABILITY, Layer.LEARNED})


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a call runs and why.

    `target` is None when the call cannot run anywhere allowed (`reason` says why).
    `fallback` is where to go if the target fails while running; `replaced` is the decision a
    wrapper overrode.

    `stable` says the decision follows from the policy and the call site alone (a hint or a
    static route): the symbol, hint, metadata, sensitivity and whether the callee has
    source here, not the arguments or the runtime context hash. It stays right for every
    call at that site while its target's circuit is closed and its provider's health check
    passes, so a router may reuse it without asking the engine again (`delegation.router`).
    A layer that decides anything from other state returns a decision that is not stable; a
    wrapper may pass a stable decision on (or a `replace`d copy of it) only when what it
    checked is the policy, those parts of the context, or the health of that target.
    """

    target: ExecTarget | None
    layer: Layer
    reason: str
    confidence: float = 1.0
    fallback: ExecTarget | None = None
    from_cache: bool = False
    replaced: Decision | None = None
    withheld: str | None = None  # a fallback the security context took away, and why
    stable: bool = False


class Engine(Protocol):
    def decide(self, ctx: CallContext) -> Decision: ...


class L4Directory(Protocol):
    def find_by_name(self, symbol: str) -> Any | None:
        """The trusted published record for `symbol`, if any (with .pointer and .signature)."""
        ...


class Learner(Protocol):
    def best(self, symbol: str, candidates: Sequence[ExecTarget]) -> tuple[ExecTarget, str] | None:
        ...


class StaticDelegationEngine:
    """The decision layers, in order. Pure: no I/O except through its injected parts.

    Args:
        config: the policy.
        plans: the L1 plan cache (None to disable the layer).
        capabilities: capability id -> offering targets (`CapabilityRegistry`-like).
        l4: finds functions published by name (None when L4 is off).
        learner: suggests a target from recorded outcomes (None to disable).
        l3: the contextual cache (None to disable the layer).
        usable: whether a target can be chosen now without I/O (e.g. its circuit is not
            open); L3 explores only among usable targets.
    """

    def __init__(self, config: DelegationConfig, *, plans: PlanStore | None = None,
                 capabilities: Any = None, l4: L4Directory | None = None,
                 learner: Learner | None = None, l3: ContextualCache | None = None,
                 usable: Callable[[ExecTarget], bool] | None = None) -> None:
        self.config = config
        self.plans = plans
        self.capabilities = capabilities
        self.l4 = l4 if config.enable_l4_cache else None
        self.learner = learner
        self.l3 = l3 if config.l3.enabled else None
        self.usable = usable
        # Decisions that depend only on the hint, the route or the plan are immutable: they
        # are built once and handed out again (the hot path allocates nothing).
        self._by_hint: dict[DelegationHint, Decision] = {}
        self._by_route: dict[Any, Decision] = {}
        # Bounded, least recently used out (cachetools is not thread-safe: one lock).
        self._by_plan: LRUCache[int, tuple[Any, Decision]] = LRUCache(maxsize=10_000)
        self._lock = threading.Lock()
        self._default = Decision(config.default_target, Layer.DEFAULT,
                                 "no hint, route, plan or metadata applies: configured default")

    def decide(self, ctx: CallContext) -> Decision:
        if ctx.hint is not None:
            decision = self._by_hint.get(ctx.hint)
            return decision if decision is not None else self._hint_decision(ctx.hint)
        route = self.config.routes.match(ctx.symbol)
        if route is not None:
            decision = self._by_route.get(route)
            return decision if decision is not None else self._route_decision(route)
        if self.l3 is not None and ctx.context.values:
            decision = self._by_context(ctx)
            if decision is not None:
                return decision
        if self.plans is not None:
            plan = self.plans.get(ctx.symbol, ctx.task)
            if plan is not None:
                with self._lock:
                    cached = self._by_plan.get(id(plan))
                return cached[1] if cached is not None and cached[0] is plan else (
                    self._plan_decision(plan))
        for layer in (self._by_metadata, self._by_capability, self._by_l4, self._by_learning):
            decision = layer(ctx)
            if decision is not None:
                return decision
        return self._default

    # -- layers ------------------------------------------------------------------------------
    def _hint_decision(self, hint: DelegationHint) -> Decision:
        decision = Decision(self._resolve_hint(hint), Layer.HINT,
                            f"^:delegation {hint.kind} {hint.target or ''}".rstrip(), stable=True)
        self._by_hint[hint] = decision
        return decision

    def _route_decision(self, route: Any) -> Decision:
        layer = Layer.STATIC_GLOB if route.is_glob else Layer.STATIC_EXACT
        where = f" (line {route.line})" if route.line else ""
        decision = Decision(route.target, layer, f"static route {route.pattern!r}{where}",
                            fallback=route.fallback, stable=True)
        self._by_route[route] = decision
        return decision

    def _plan_decision(self, plan: Any) -> Decision:
        decision = Decision(plan.target, Layer.L1, f"cached plan: {plan.reasoning}",
                            plan.confidence, from_cache=True)
        with self._lock:
            self._by_plan[id(plan)] = (plan, decision)  # the plan is kept: its id stays unique
        return decision

    def _resolve_hint(self, hint: DelegationHint) -> ExecTarget:
        if hint.kind is HintKind.LOCAL:
            return LOCAL_PURE
        if hint.kind is HintKind.LOCAL_MODEL:
            return LocalModel(hint.target or "")
        if hint.kind is HintKind.REMOTE:
            return RemoteModel(hint.target or "")
        try:
            return resolve_target_name(hint.target or "", self.config.remote_providers,
                                       self.config.local_models)
        except ValueError as err:  # resolve_target_name's "unknown target ..."
            raise DelegationError(f"delegation hint target {hint.target!r}: {err}") from err

    def _candidates(self, symbol: str) -> tuple[ExecTarget, ...]:
        if self.capabilities is None or symbol not in self.capabilities:
            return ()
        return tuple(self.capabilities.targets_for(symbol))

    def _by_metadata(self, ctx: CallContext) -> Decision | None:
        meta = ctx.metadata
        if meta.delegated_agent is not None:
            trusted = meta.agent_trust_score is None or meta.agent_trust_score >= 0.5
            target = self._agent_target(meta.delegated_agent)
            if target is not None and trusted:
                return Decision(target, Layer.METADATA,
                                f"metadata delegates to {meta.delegated_agent}",
                                meta.confidence if meta.confidence is not None else 1.0)
        candidates = list(self._candidates(ctx.symbol))
        if not candidates or (meta.complexity is None and meta.agent_cost is None):
            return None
        reasons = []
        if meta.agent_cost is not None:
            affordable = [t for t in candidates if self._cost(t) <= meta.agent_cost]
            if not affordable:
                return None
            candidates = sorted(affordable, key=self._cost)
            reasons.append(f"cheapest within agent_cost {meta.agent_cost:g}")
        low_confidence = meta.confidence is None or meta.confidence < 0.5
        if meta.complexity is Complexity.HIGH and low_confidence:
            candidates.sort(key=lambda t: not isinstance(t, RemoteModel))
            reasons.append("high complexity and low local confidence: capable remote first")
        elif meta.complexity is Complexity.LOW:
            candidates.sort(key=lambda t: isinstance(t, RemoteModel))
            reasons.append("low complexity: local first")
        return Decision(candidates[0], Layer.METADATA, "; ".join(reasons),
                        meta.confidence if meta.confidence is not None else 0.7)

    def _agent_target(self, agent: str) -> ExecTarget | None:
        if agent in self.config.remote_providers:
            return RemoteModel(agent)
        if agent in self.config.local_models:
            return LocalModel(agent)
        try:
            return resolve_target_name(agent, self.config.remote_providers,
                                       self.config.local_models)
        except ValueError:
            return None

    def _cost(self, target: ExecTarget) -> float:
        if isinstance(target, RemoteModel):
            return self.config.remote_providers[target.id].cost_per_call
        if isinstance(target, LocalModel):
            return self.config.local_models[target.id].cost_per_call
        return 0.0

    def _by_capability(self, ctx: CallContext) -> Decision | None:
        candidates = self._candidates(ctx.symbol)
        if not candidates:
            return None
        return Decision(candidates[0], Layer.CAPABILITY,
                        f"capability {ctx.symbol!r} offered by {candidates[0]}", 0.8)

    def _by_l4(self, ctx: CallContext) -> Decision | None:
        if self.l4 is None or ctx.has_source or ctx.is_capability:
            return None
        try:
            record = self.l4.find_by_name(ctx.symbol)
        except StorageError:  # L4 is a cache: a store that is down is a miss
            return None
        if record is None:
            return None
        target = L4CacheHit(record.pointer, record.signature)
        return Decision(target, Layer.L4, f"no local source; published in L4 as {record.label}",
                        0.9)

    def _by_context(self, ctx: CallContext) -> Decision | None:
        """L3: a choice among the targets policy allows for this call, learned per context."""
        assert self.l3 is not None
        allowed = [t for t in self._candidates(ctx.symbol)
                   if security_problem(self.config.security, ctx, t, Layer.L3) is None
                   and (self.usable is None or self.usable(t))]
        if len(allowed) < 2:
            return None  # nothing to choose: the other layers decide (outcomes still count)
        found = self.l3.decide(ctx.symbol, ctx.context, allowed)
        if found.target is None:
            return None
        return Decision(found.target, Layer.L3, f"{found.reason}; context "
                        f"{ctx.context.describe()}", found.mean if found.mean else 0.5)

    def _by_learning(self, ctx: CallContext) -> Decision | None:
        if self.learner is None:
            return None
        suggestion = self.learner.best(ctx.symbol, self._candidates(ctx.symbol))
        if suggestion is None:
            return None
        target, why = suggestion
        return Decision(target, Layer.LEARNED, why, 0.6)


HealthCheck = Callable[[ExecTarget], Health]


class ResilientDelegationEngine:
    """Keeps calls away from targets that cannot serve now.

    An unhealthy target (failed health check, open circuit) is replaced by the decision's
    fallback when that one is healthy; with no usable fallback the decision says the target
    is unavailable, with the reason, and nothing is contacted.
    """

    def __init__(self, inner: Engine, health: HealthCheck) -> None:
        self.inner = inner
        self.health = health

    def decide(self, ctx: CallContext) -> Decision:
        decision = self.inner.decide(ctx)
        target = decision.target
        if target is None or isinstance(target, (LocalPure, L4CacheHit)):
            return decision
        status = self.health(target)
        if status.ok:
            return decision
        fallback = decision.fallback
        if fallback is not None:
            fallback_status = self.health(fallback)
            if fallback_status.ok:
                return Decision(fallback, Layer.FALLBACK,
                                f"{target} unavailable ({status.reason}); route fallback",
                                decision.confidence, replaced=decision)
            return Decision(None, Layer.UNAVAILABLE,
                            f"{target} unavailable ({status.reason}); fallback {fallback} "
                            f"unavailable too ({fallback_status.reason})", replaced=decision)
        if decision.withheld is not None:
            return Decision(None, Layer.SECURITY, f"refused: {target} unavailable "
                            f"({status.reason}) and {decision.withheld}", replaced=decision)
        return Decision(None, Layer.UNAVAILABLE, f"{target} unavailable: {status.reason}",
                        replaced=decision)


class SecurityAwareDelegationEngine:
    """The security context: remote only when allowed and the call is not sensitive.

    A forbidden remote target is replaced by the decision's local fallback (if healthy) or
    the call is refused; a forbidden remote *fallback* is withheld, so no later layer can
    send the call there. The replaced decision is kept for the explanation.
    """

    def __init__(self, inner: Engine, config: DelegationConfig,
                 health: HealthCheck | None = None, capabilities: Any = None) -> None:
        self.inner = inner
        self.security = config.security
        self.health = health
        self.capabilities = capabilities

    def decide(self, ctx: CallContext) -> Decision:
        decision = self.inner.decide(ctx)
        problem = security_problem(self.security, ctx, decision.target, decision.layer)
        if problem is None:
            if decision.fallback is None:
                return decision
            withheld = security_problem(self.security, ctx, decision.fallback, Layer.FALLBACK)
            if withheld is None:
                return decision
            return replace(decision, fallback=None, withheld=withheld)
        local = self._local_alternative(decision) or self._local_provider(ctx)
        if local is not None:
            return Decision(local, Layer.SECURITY, f"{problem}; ran on local {local}",
                            decision.confidence, replaced=decision)
        return Decision(None, Layer.SECURITY, f"refused: {problem}; no local target",
                        replaced=decision)

    def _local_provider(self, ctx: CallContext) -> ExecTarget | None:
        """A healthy local model offering the capability `ctx` calls, if any."""
        if self.capabilities is None or ctx.symbol not in self.capabilities:
            return None
        for target in self.capabilities.targets_for(ctx.symbol):
            if isinstance(target, LocalModel) and (self.health is None or self.health(target).ok):
                return target
        return None

    def _local_alternative(self, decision: Decision) -> ExecTarget | None:
        candidate = decision.fallback
        if candidate is None or _remote_of(candidate) is not None:
            return None
        if isinstance(candidate, LocalPure) or self.health is None or self.health(candidate).ok:
            return candidate
        return None


ROUTE_LAYERS = frozenset({Layer.STATIC_EXACT, Layer.STATIC_GLOB, Layer.FALLBACK})
"""Layers whose targets a static route names (a fallback only ever comes from a route)."""


def security_problem(security: SecurityConfig, ctx: CallContext,
                     target: ExecTarget | None, layer: Layer) -> str | None:
    """Why the security context forbids running `ctx` on `target`, decided by `layer`, or
    None if it allows it."""
    remote = _remote_of(target)
    if remote is None:
        return None
    if ctx.sensitive:
        return f"{ctx.symbol} is sensitive and never leaves this node ({target} refused)"
    if not security.remote_allowed(remote.id):
        return f"provider {remote.id!r} is not in the security allow-list"
    refused = security.remote_needs_route(layer in ROUTE_LAYERS, layer is Layer.HINT)
    return f"{refused} ({target} for {ctx.symbol} came from {layer})" if refused else None


def _remote_of(target: ExecTarget | None) -> RemoteModel | None:
    return target if isinstance(target, RemoteModel) else None


