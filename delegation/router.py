"""The `CallRouter` the RTFS VM consults: decide -> execute -> record -> remember.

For every routed call the router builds the call's context, asks the engine where it runs,
runs it there (the VM for `LocalPure`, a provider for `LocalModel`/`RemoteModel`, verified L4
bytecode for `L4CacheHit`), falls back to the route's fallback when the target turns out to be
unreachable, records the outcome (latency, success, cost) for the health monitor and the
learner, stores worthwhile decisions as L1 plans, and keeps a `CallRecord` for `--explain`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from delegation.codelib import CodeLibrary
from delegation.config import DelegationConfig
from delegation.context import CallContext, ContextFactory
from delegation.engine import CACHEABLE_LAYERS, Decision, Engine, Layer, security_problem
from delegation.errors import (
    CallUnavailable,
    ProviderError,
    ProviderUnavailable,
    SecurityViolation,
    StorageFailure,
)
from delegation.executor import Executor
from delegation.health import HealthMonitor
from delegation.l1 import new_plan
from delegation.l2.serving import Consult, ModelResults
from delegation.l3.cache import ContextualCache
from delegation.learning import Learner
from delegation.planstore import PlanStore
from delegation.targets import ExecTarget, LocalPure
from delegation.trace import MAX_RECORDS, CallRecord
from rtfs.errors import DeadlineExceeded
from rtfs.router import CallKind, Claim, RoutedCall
from storage import StorageError


class DelegationRouter:
    """Implements `rtfs.router.CallRouter` on top of an engine.

    Args:
        config: the policy (routes, capabilities, security).
        engine: decides (usually Resilient(SecurityAware(Static))).
        executor: runs a decided call.
        contexts: builds call contexts.
        health, plans, learner: what outcomes feed.
        library: the L4 code library (None when L4 is off).
        defined: whether the VM defines a name (claims leaves those to the VM).
        timer: latency clock; clock: wall clock for plan timestamps.
        l2: the semantic result cache around model calls (None: off).
        l3: the contextual cache that learns from outcomes in declared contexts (None: off).
    """

    def __init__(self, *, config: DelegationConfig, engine: Engine, executor: Executor,
                 contexts: ContextFactory, health: HealthMonitor, plans: PlanStore,
                 learner: Learner, library: CodeLibrary | None,
                 defined: Callable[[str], bool], capabilities: Any,
                 timer: Callable[[], float] = time.perf_counter,
                 clock: Callable[[], float] = time.time, l2: ModelResults | None = None,
                 l3: ContextualCache | None = None) -> None:
        self.version = 0
        self.config, self.engine, self.executor, self.contexts = config, engine, executor, contexts
        self.health, self.plans, self.learner, self.library = health, plans, learner, library
        self.defined, self.capabilities = defined, capabilities
        self.timer, self.clock = timer, clock
        self.l2, self.l3 = l2, l3
        self.records: deque[CallRecord] = deque(maxlen=MAX_RECORDS)
        self._lock = threading.Lock()
        if library is not None:  # what L4 resolves a name to is part of what claims answers
            library.on_change(self._policy_changed)

    def _policy_changed(self) -> None:
        self.version += 1

    # -- CallRouter ----------------------------------------------------------------------------
    def claims(self, name: str) -> Claim:
        route = self.config.route_for(name)
        if route is not None:
            # A static route outranks everything but a hint (which the VM routes anyway):
            # one to the VM decides LocalPure whatever the arguments, once per call site.
            return Claim.ONCE if isinstance(route.target, LocalPure) else Claim.ALWAYS
        if name in self.capabilities or self.config.security.is_sensitive(name):
            return Claim.ALWAYS
        if self.defined(name) or self.library is None or not self.config.enable_l4_cache:
            return Claim.NO
        try:
            found = self.library.find_by_name(name) is not None
        except StorageError:  # L4 is down: route() says so instead of "unbound symbol"
            return Claim.ALWAYS
        return Claim.ALWAYS if found else Claim.NO

    def route(self, call: RoutedCall) -> Any:
        started = self.timer()
        ctx = self.contexts.build(call)
        decision = self.engine.decide(ctx)
        record = CallRecord(call.name, str(call.kind), _describe(decision.target),
                            str(decision.layer), decision.reason,
                            "hit" if decision.from_cache else "-", line=call.line, col=call.col)
        try:
            value = self._execute(decision, call, ctx, record)
        except BaseException as err:
            record.outcome = record.outcome if record.outcome != "ok" else "error"
            record.detail = record.detail or _error_text(err)
            raise
        else:
            record.value = value
            if decision.layer in CACHEABLE_LAYERS and not decision.from_cache:
                self._remember(ctx, decision, record)
            return value
        finally:
            record.latency_s = self.timer() - started
            with self._lock:
                self.records.append(record)

    # -- helpers ---------------------------------------------------------------------------------
    def _execute(self, decision: Decision, call: RoutedCall, ctx: CallContext,
                 record: CallRecord) -> Any:
        if decision.target is None:
            refused = decision.layer is Layer.SECURITY
            record.outcome = "refused" if refused else "unavailable"
            record.detail = decision.reason
            if refused:
                raise SecurityViolation(call.name, decision.reason)
            raise CallUnavailable(call.name, decision.reason)
        targets = [decision.target]
        if decision.fallback is not None and decision.fallback != decision.target:
            targets.append(decision.fallback)
        last_error: Exception | None = None
        # A federated decision's fallback is a second peer, not a route's: it is checked as
        # federated (a route may send a call remote where federation may not).
        second = Layer.FEDERATION if decision.layer is Layer.FEDERATION else Layer.FALLBACK
        for target, layer in zip(targets, (decision.layer, second)):
            # The engine already applied the security context; checking again right before
            # anything leaves this node keeps the privacy rule true whatever engine is used.
            if call.deadline is not None and call.deadline.expired():
                raise DeadlineExceeded(f"{call.name}: the deadline passed before {target} "
                                       "could be tried", call.line, call.col)
            problem = security_problem(self.config.security, ctx, target, layer)
            if problem is not None:
                record.attempts.append(f"{target}: skipped, {problem}")
                continue
            consult = self._consult_l2(target, call, ctx, record)
            if consult is not None and consult.serves:
                assert consult.found is not None
                return consult.found.value  # the call did not run: nothing to observe
            started = self.timer()
            if call.callee is None and call.kind is CallKind.FUNCTION and type(target) is LocalPure:
                self._missing(call)
            try:
                value, cost = self.executor.run(target, call)
            except (ProviderUnavailable, ProviderError) as err:
                self._observe(ctx, target, False, self.timer() - started, 0.0)
                record.attempts.append(f"{target}: {_error_text(err)}")
                last_error = err
                continue
            except StorageError as err:
                raise StorageFailure(str(target), str(err)) from err
            latency_s = self.timer() - started
            self._observe(ctx, target, True, latency_s, cost)
            if consult is not None and self.l2 is not None:
                note = self.l2.settle(consult, value, latency_s, cost)
                if note:
                    record.notes.append(f"L2: {note}")
                if "stored" in note and record.l2 in ("-", "miss"):
                    record.l2 = "stored"
            record.cost += cost
            if target is not decision.target and target != decision.target:
                record.target, record.layer = str(target), str(layer)
                record.reason += (f"; {decision.target} failed, ran on route fallback"
                                  if layer is Layer.FALLBACK else
                                  f"; {decision.target} failed, ran on {target}")
            return value
        if last_error is None:
            record.outcome = "refused"
            raise SecurityViolation(call.name, "; ".join(record.attempts))
        record.outcome = "unavailable"
        raise last_error

    def _consult_l2(self, target: ExecTarget, call: RoutedCall, ctx: CallContext,
                    record: CallRecord) -> Consult | None:
        if self.l2 is None:
            return None
        tenant = ctx.context.values.get("tenant")
        consult = self.l2.consult(target, ctx.symbol, call.args, ctx.sensitive,
                                  tenant if isinstance(tenant, str) else None)
        found = consult.found if consult is not None else None
        if consult is not None and consult.note:
            record.notes.append(consult.note)
        if found is not None:
            record.l2 = ("shadow" if found.shadow else found.tier or "") if found.hit else "miss"
            record.notes.append(found.describe())
        return consult

    def _missing(self, call: RoutedCall) -> None:
        """A function with no definition here: if L4 is down, that is why (not "unbound")."""
        outage = self.library.outage if self.library is not None else None
        if outage is not None:
            raise CallUnavailable(call.name, f"not defined on this node, and L4 cannot be "
                                             f"asked for it: {outage}")

    def _observe(self, ctx: CallContext, target: ExecTarget, ok: bool, latency_s: float,
                 cost: float) -> None:
        self.health.record(target, ok)
        self.learner.record(ctx.symbol, target, ok, latency_s, cost)
        if self.l3 is not None and ctx.context.values:
            self.l3.record(ctx.symbol, ctx.context, target, ok, latency_s, cost)

    def _remember(self, ctx: CallContext, decision: Decision, record: CallRecord) -> None:
        assert decision.target is not None
        plan = new_plan(decision.target, decision.confidence, decision.reason,
                        {"layer": str(decision.layer)}, clock=self.clock)
        self.plans.put(ctx.symbol, ctx.task, plan)
        record.cache = "stored"

    def take_records(self) -> list[CallRecord]:
        with self._lock:
            taken = list(self.records)
            self.records.clear()
        return [record.settle() for record in taken]


def _describe(target: ExecTarget | None) -> str:
    return str(target) if target is not None else "-"


def _error_text(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"
