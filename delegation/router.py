"""The `CallRouter` the RTFS VM consults: decide -> execute -> record -> remember.

For every routed call the router builds the call's context, asks the engine where it runs,
runs it there (the VM for `LocalPure`, a provider for `LocalModel`/`RemoteModel`, verified L4
bytecode for `L4CacheHit`), falls back to the route's fallback when the target turns out to be
unreachable, records the outcome (latency, success, cost) for the health monitor and the
learner, stores worthwhile decisions as L1 plans, and keeps a `CallRecord` for `--explain`.

What follows from the call site alone is worked out once: the context's static part
(`delegation.context.CallSite`) and a stable decision (a hint or a static route), with its
trace strings, security check, runner and outcome recorders (`_Prepared`); a stable decision
is reused only while its target's circuit is closed and its provider's check passes. A call
whose target may simply run it takes a direct path that builds its trace record when the
trace is read.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from delegation.codelib import CodeLibrary
from delegation.config import DelegationConfig
from delegation.context import CallContext, CallSite, ContextFactory
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


class _Part:
    """A part of the router (engine, policy, ...): replacing it drops the prepared decisions."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = "_" + name

    def __get__(self, router: Any, owner: type | None = None) -> Any:
        return self if router is None else getattr(router, self.slot)

    def __set__(self, router: Any, value: Any) -> None:
        setattr(router, self.slot, value)
        if hasattr(router, "_memo_for"):
            router._forget()


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

    config: DelegationConfig = _Part()  # type: ignore[assignment]
    engine: Engine = _Part()  # type: ignore[assignment]
    executor: Executor = _Part()  # type: ignore[assignment]
    health: HealthMonitor = _Part()  # type: ignore[assignment]
    learner: Learner = _Part()  # type: ignore[assignment]

    def __init__(self, *, config: DelegationConfig, engine: Engine, executor: Executor,
                 contexts: ContextFactory, health: HealthMonitor, plans: PlanStore,
                 learner: Learner, library: CodeLibrary | None,
                 defined: Callable[[str], bool], capabilities: Any,
                 timer: Callable[[], float] = time.perf_counter,
                 clock: Callable[[], float] = time.time, l2: ModelResults | None = None,
                 l3: ContextualCache | None = None) -> None:
        self.version = 0
        self._memo: dict[int, _Prepared] = {}
        self._memo_for: tuple[Any, ...] = ()
        self.config, self.engine, self.executor, self.contexts = config, engine, executor, contexts
        self.health, self.plans, self.learner, self.library = health, plans, learner, library
        self.defined, self.capabilities = defined, capabilities
        self.timer, self.clock = timer, clock
        self.l2, self.l3 = l2, l3
        self.records: deque[CallRecord | tuple[Any, ...]] = deque(maxlen=MAX_RECORDS)
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
        timer = self.timer
        started = timer()
        prepared = self._decide(self.contexts.site(call), call.args)
        if not (prepared.direct and call.deadline is None and self.l2 is None):
            return self._traced(prepared, call, started, None)
        # The common case written out: the decided target may run the call and nothing is
        # consulted first (no L2, no deadline): `_execute`'s first attempt, and when it
        # succeeds, its trace. Anything else continues on the general path where it is.
        run_started = timer()
        try:
            value, cost = prepared.run(call)
        except BaseException as err:
            return self._traced(prepared, call, started, (err, run_started))
        latency_s = timer() - run_started
        prepared.breaker(True)
        prepared.learn(True, latency_s, cost)
        ctx = prepared.ctx
        if self.l3 is not None and ctx.context.values:
            self.l3.record(ctx.symbol, ctx.context, prepared.attempts[0][0], True, latency_s, cost)
        # the trace keeps what the record is made of; `take_records` makes it
        self.records.append((prepared, call.name, call.kind, call.line, call.col,
                             timer() - started, cost, value))
        return value

    def _traced(self, prepared: _Prepared, call: RoutedCall, started: float,
                failed: tuple[BaseException, float] | None) -> Any:
        """Run the call on the general path, keeping its `CallRecord`; `failed` is the error
        of a first attempt already made on the direct path (and when it started)."""
        decision, ctx = prepared.decision, prepared.ctx
        record = CallRecord(call.name, str(call.kind), prepared.target, prepared.layer,
                            decision.reason, prepared.cache, line=call.line, col=call.col)
        try:
            value = self._execute(prepared, call, ctx, record, failed)
        except BaseException as err:
            record.outcome = record.outcome if record.outcome != "ok" else "error"
            record.detail = record.detail or _error_text(err)
            raise
        else:
            record.value = value
            if prepared.remember:
                self._remember(ctx, decision, record)
            return value
        finally:
            record.latency_s = self.timer() - started
            self.records.append(record)  # atomic; `take_records` pops, so nothing is lost

    # -- helpers ---------------------------------------------------------------------------------
    def _decide(self, site: CallSite, args: tuple[Any, ...]) -> _Prepared:
        """The engine's decision for a call at `site` with `args`, with what the call's path
        needs of it (`_Prepared`).

        A stable decision (a hint or a static route, `Decision.stable`) is kept on its call
        site and reused while its target stays healthy (`HealthMonitor.steady`: an opened
        breaker or a failing health check sends the call to the engine again, at once). Any
        other decision is asked of the engine on every call; when the engine answers with
        the same decision object for the same context (a cached plan's), what was worked out
        for it is reused. Everything kept is dropped when the engine, the policy, the
        executor, the health monitor, the learner or `version` changes.
        """
        memo_for = self._memo_for
        if memo_for[0] != self.version:
            self._forget()
            memo_for = self._memo_for
        prepared = site.stable
        if prepared is not None and prepared.token is memo_for and prepared.steady():
            return prepared  # type: ignore[no-any-return]
        ctx = self.contexts.context_at(site, args)
        memo = self._memo
        prepared = memo.get(id(ctx))
        if prepared is not None:
            decision = self.engine.decide(ctx)
            if decision is prepared.decision and prepared.token is memo_for:
                return prepared
        else:
            decision = self.engine.decide(ctx)
        prepared = _Prepared(ctx, decision, self, memo_for)
        if len(memo) >= MAX_MEMO:
            memo.clear()
        memo[id(ctx)] = prepared
        if prepared.steady is not None and not prepared.remember:
            site.stable = prepared  # nothing of it depends on this call's arguments
        return prepared

    def _forget(self) -> None:
        """Drop every prepared decision (a part was replaced, or `version` changed)."""
        # What was worked out for a decision on a context (`_Prepared`), by the context's
        # id (the entry holds the context, so the id stays its own). A prepared decision
        # kept on a call site is valid while its token is `_memo_for`.
        self._memo = {}
        self._memo_for = (self.version, object())

    def _execute(self, prepared: _Prepared, call: RoutedCall, ctx: CallContext,
                 record: CallRecord, failed: tuple[BaseException, float] | None = None) -> Any:
        decision = prepared.decision
        if decision.target is None:
            refused = decision.layer is Layer.SECURITY
            record.outcome = "refused" if refused else "unavailable"
            record.detail = decision.reason
            if refused:
                raise SecurityViolation(call.name, decision.reason)
            raise CallUnavailable(call.name, decision.reason)
        last_error: Exception | None = None
        attempts = prepared.attempts
        if failed is not None:  # the first attempt ran on the direct path: its failure
            last_error = self._first_failed(prepared, ctx, record, *failed)
            attempts = attempts[1:]
        for target, layer in attempts:
            first = target is decision.target
            # The engine already applied the security context; checking again right before
            # anything leaves this node keeps the privacy rule true whatever engine is used.
            if call.deadline is not None and call.deadline.expired():
                raise DeadlineExceeded(f"{call.name}: the deadline passed before {target} "
                                       "could be tried", call.line, call.col)
            problem = (prepared.problem if first else
                       security_problem(self.config.security, ctx, target, layer))
            if problem is not None:
                record.attempts.append(f"{target}: skipped, {problem}")
                continue
            consult = self._consult_l2(target, call, ctx, record) if self.l2 is not None else None
            if consult is not None and consult.serves:
                assert consult.found is not None
                return consult.found.value  # the call did not run: nothing to observe
            breaker, learn = ((prepared.breaker, prepared.learn) if first else
                              (self.health.recorder(target),
                               self.learner.recorder(ctx.symbol, target)))
            started = self.timer()
            if call.callee is None and call.kind is CallKind.FUNCTION and type(target) is LocalPure:
                self._missing(call)
            try:
                value, cost = prepared.run(call) if first else self.executor.run(target, call)
            except (ProviderUnavailable, ProviderError) as err:
                self._observe(ctx, target, False, self.timer() - started, 0.0, breaker, learn)
                record.attempts.append(f"{target}: {_error_text(err)}")
                last_error = err
                continue
            except StorageError as err:
                raise StorageFailure(str(target), str(err)) from err
            latency_s = self.timer() - started
            breaker(True)  # what `_observe` does, written out: this is every call's path
            learn(True, latency_s, cost)
            if self.l3 is not None and ctx.context.values:
                self.l3.record(ctx.symbol, ctx.context, target, True, latency_s, cost)
            if consult is not None and self.l2 is not None:
                note = self.l2.settle(consult, value, latency_s, cost)
                if note:
                    record.notes.append(f"L2: {note}")
                if "stored" in note and record.l2 in ("-", "miss"):
                    record.l2 = "stored"
            record.cost += cost
            if not first and target != decision.target:
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

    def _first_failed(self, prepared: _Prepared, ctx: CallContext, record: CallRecord,
                      err: BaseException, started: float) -> Exception:
        """What `_execute` does when its first attempt raises `err` (started at `started`):
        a provider's failure is observed and tried past; anything else is raised."""
        if isinstance(err, (ProviderUnavailable, ProviderError)):
            target = prepared.attempts[0][0]
            self._observe(ctx, target, False, self.timer() - started, 0.0, prepared.breaker,
                          prepared.learn)
            record.attempts.append(f"{target}: {_error_text(err)}")
            return err
        if isinstance(err, StorageError):
            raise StorageFailure(prepared.target, str(err)) from err
        raise err

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
                 cost: float, breaker: Callable[[bool], None],
                 learn: Callable[[bool, float, float], None]) -> None:
        """Feed an outcome to the target's breaker (`HealthMonitor.recorder`), the learner
        (`Learner.recorder`) and L3."""
        breaker(ok)
        learn(ok, latency_s, cost)
        if self.l3 is not None and ctx.context.values:
            self.l3.record(ctx.symbol, ctx.context, target, ok, latency_s, cost)

    def _remember(self, ctx: CallContext, decision: Decision, record: CallRecord) -> None:
        assert decision.target is not None
        plan = new_plan(decision.target, decision.confidence, decision.reason,
                        {"layer": str(decision.layer)}, clock=self.clock)
        self.plans.put(ctx.symbol, ctx.task, plan)
        record.cache = "stored"

    def take_records(self) -> list[CallRecord]:
        records, taken = self.records, []
        with self._lock:  # takers one at a time; calls append without it
            while True:
                try:
                    taken.append(records.popleft())
                except IndexError:
                    break
        return [(record if isinstance(record, CallRecord) else _direct_record(record)).settle()
                for record in taken]


MAX_MEMO = 8192  # prepared decisions kept (contexts are kept per call site and signature)


class _Prepared:
    """A decision on one context and what every call it decides needs: the trace's strings,
    the targets to try in order (with the layer each counts as), the security check of the
    first, how to run it and where its outcome goes, and, for a stable decision, the health
    check to repeat before reusing it."""

    __slots__ = ("attempts", "breaker", "cache", "ctx", "decision", "direct", "layer", "learn",
                 "problem", "remember", "run", "steady", "target", "token")

    def __init__(self, ctx: CallContext, decision: Decision, router: DelegationRouter,
                 token: tuple[Any, ...]) -> None:
        self.ctx, self.decision = ctx, decision  # the context is held: its id stays unique
        self.token = token  # the router's parts it was prepared with
        target = decision.target
        self.target = str(target) if target is not None else "-"
        self.layer = str(decision.layer)
        self.cache = "hit" if decision.from_cache else "-"
        self.remember = decision.layer in CACHEABLE_LAYERS and not decision.from_cache
        self.attempts: tuple[tuple[ExecTarget, Layer], ...] = ()
        self.problem: str | None = None
        self.steady: Callable[[], bool] | None = None
        self.direct = False
        if target is None:
            return
        self.attempts = ((target, decision.layer),)
        if decision.fallback is not None and decision.fallback != target:
            # A federated decision's fallback is a second peer, not a route's: it is checked
            # as federated (a route may send a call remote where federation may not).
            second = Layer.FEDERATION if decision.layer is Layer.FEDERATION else Layer.FALLBACK
            self.attempts += ((decision.fallback, second),)
        self.problem = security_problem(router.config.security, ctx, target, decision.layer)
        self.run = router.executor.runner(target)
        self.breaker = router.health.recorder(target)
        self.learn = router.learner.recorder(ctx.symbol, target)
        if decision.stable:
            self.steady = router.health.steady(target)
        # `route` may run it directly: allowed, not a plan to store, and not the VM for a
        # name with no definition (`_missing` has a say there)
        self.direct = (self.problem is None and not self.remember
                       and type(target) is not LocalPure)


def _direct_record(kept: tuple[Any, ...]) -> CallRecord:
    """The `CallRecord` of a call that succeeded on `route`'s direct path."""
    prepared, name, kind, line, col, latency_s, cost, value = kept
    return CallRecord(name, str(kind), prepared.target, prepared.layer, prepared.decision.reason,
                      prepared.cache, "ok", "", latency_s, 0.0 + cost, [], line, col, "-", [],
                      value)


def _error_text(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"
