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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from delegation.codelib import CodeLibrary
from delegation.config import DelegationConfig
from delegation.context import (
    CallContext,
    arg_type_fingerprint,
    metadata_from_rtfs,
    runtime_context_hash,
)
from delegation.engine import CACHEABLE_LAYERS, Decision, Engine, Layer, security_problem
from delegation.errors import (
    CallUnavailable,
    ProviderError,
    ProviderUnavailable,
    SecurityViolation,
    StorageFailure,
)
from delegation.health import HealthMonitor
from delegation.l1 import L1PlanCache, new_plan
from delegation.learning import Learner
from delegation.metadata import DelegationMetadata
from delegation.targets import ExecTarget, L4CacheHit, LocalModel, LocalPure, RemoteModel
from rtfs.printer import preview, to_display
from rtfs.router import CallKind, Claim, RoutedCall
from rtfs.values import Closure, DelegationHint, Keyword, Map
from storage import StorageError

AVAILABILITY_TTL_S = 1.0
MAX_RECORDS = 10_000  # the explain trace keeps the most recent calls of a run


@dataclass(slots=True)
class CallRecord:
    """One routed call, for `--explain` and `--json`."""

    symbol: str
    kind: str
    target: str
    layer: str
    reason: str
    cache: str  # "hit" (decided by an L1 plan), "stored" (became one), or "-"
    outcome: str = "ok"  # ok | error | refused | unavailable
    detail: str = ""
    latency_s: float = 0.0
    cost: float = 0.0
    attempts: list[str] = field(default_factory=list)
    line: int | None = None
    col: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class ContextFactory:
    """Builds `CallContext`s.

    The "available providers" in the runtime context hash are the configured model targets
    whose circuit is not open: known without I/O, so building a context never waits on a
    provider's health check (those run only for the target a decision picks).
    """

    def __init__(self, config: DelegationConfig, health: HealthMonitor,
                 targets: Iterable[ExecTarget], clock: Callable[[], float]) -> None:
        self.config = config
        self.health = health
        self.targets = tuple(targets)
        self.clock = clock
        self._available: tuple[float, tuple[str, ...]] | None = None
        self._hashes: dict[tuple[tuple[str, ...], int], int] = {}

    def available(self) -> tuple[str, ...]:
        now = self.clock()
        cached = self._available
        if cached is None or now - cached[0] > AVAILABILITY_TTL_S:
            ids = tuple(sorted(str(t) for t in self.targets if self.health.circuit_ok(t)))
            cached = self._available = (now, ids)
        return cached[1]

    def runtime_hash(self, meta: DelegationMetadata) -> int:
        key = (self.available(), meta.digest())
        found = self._hashes.get(key)
        if found is None:
            if len(self._hashes) > 4096:
                self._hashes.clear()
            found = self._hashes[key] = runtime_context_hash(
                self.config.policy_version, key[0], str(self.config.security.level), key[1])
        return found

    def build(self, call: RoutedCall) -> CallContext:
        return self.context(call.name, call.args, call.metadata, call.hint,
                            has_source=call.callee is not None,
                            is_capability=call.kind is CallKind.CAPABILITY, names=call.names)

    def context(self, symbol: str, args: tuple[Any, ...], metadata: Any,
                hint: DelegationHint | None, *, has_source: bool,
                is_capability: bool = False, names: Iterable[str] = ()) -> CallContext:
        """The context of a call of `symbol`; `metadata` is the RTFS `^{...}` map (or None).

        The call is sensitive if the call site says so (`^{:sensitive true}`, or a sensitive
        pattern matching `symbol`, the name written there) or if the function called is: any
        of its own `names` (its defn name, every global it was defined under, what a
        `partial`/`comp` wraps) matches a sensitive pattern. A call site can add
        sensitivity, never remove it.
        """
        meta = metadata_from_rtfs(metadata, hint.extra if hint is not None else ())
        security = self.config.security
        sensitive = (meta.sensitive or security.is_sensitive(symbol)
                     or any(security.is_sensitive(name) for name in names))
        return CallContext(
            symbol=symbol, arg_type_fingerprint=arg_type_fingerprint(args),
            runtime_context_hash=self.runtime_hash(meta), metadata=meta, hint=hint,
            sensitive=sensitive, has_source=has_source, is_capability=is_capability)


class Executor:
    """Runs a call on a target."""

    def __init__(self, registry: Any, library: CodeLibrary | None,
                 vm: Callable[[], Any]) -> None:
        self.registry = registry
        self.library = library
        self._vm = vm

    def run(self, target: ExecTarget, call: RoutedCall) -> tuple[Any, float]:
        """(value, cost) of running `call` on `target`."""
        if isinstance(target, LocalPure):
            return call.run_local(), 0.0
        if isinstance(target, (LocalModel, RemoteModel)):
            prompt, params = prompt_of(call.args)
            result = self.registry.get(target).infer(prompt, **params)
            value = result.value if result.value is not None else result.text
            return to_rtfs(value), result.cost
        if isinstance(target, L4CacheHit):
            return self._run_published(call), 0.0
        raise TypeError(f"unknown target {target!r}")

    def _run_published(self, call: RoutedCall) -> Any:
        found = self.library.find_by_name(call.name) if self.library is not None else None
        if found is None:
            raise StorageFailure(call.name, "no trusted version is published in L4")
        code = self.library.decode(found.record.blob_id, found.data)
        vm = self._vm()
        self._bind_dependencies(code, vm, depth=0)
        return vm.call(Closure(code, (), code.name), list(call.args), route=False)

    def _bind_dependencies(self, code: Any, vm: Any, depth: int) -> None:
        """Define, by source hash, the functions published code was compiled against."""
        if depth > 32 or self.library is None:
            return
        for name, source_hash in code.deps:
            if source_hash is None or name in vm.globals:
                continue
            dep = self.library.by_source(source_hash)
            if dep is not None:
                vm.define(name, Closure(dep, (), dep.name))
                self._bind_dependencies(dep, vm, depth + 1)


def prompt_of(args: tuple[Any, ...]) -> tuple[str, dict[str, Any]]:
    """A model call's prompt (its arguments as text) and parameters (a trailing map)."""
    params: dict[str, Any] = {}
    if args and isinstance(args[-1], Map):
        params = {_param_name(k): v for k, v in args[-1].items()}
        args = args[:-1]
    return " ".join(to_display(a) for a in args), params


def _param_name(key: Any) -> str:
    name = key.name if isinstance(key, Keyword) else str(key)
    return name.replace("-", "_")


def to_rtfs(value: Any) -> Any:
    """A provider's plain answer as an RTFS value (dicts -> maps with keyword keys)."""
    if isinstance(value, Mapping):
        return Map((Keyword(str(k)), to_rtfs(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(to_rtfs(v) for v in value)
    return value


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
    """

    def __init__(self, *, config: DelegationConfig, engine: Engine, executor: Executor,
                 contexts: ContextFactory, health: HealthMonitor, plans: L1PlanCache,
                 learner: Learner, library: CodeLibrary | None,
                 defined: Callable[[str], bool], capabilities: Any,
                 timer: Callable[[], float] = time.perf_counter,
                 clock: Callable[[], float] = time.time) -> None:
        self.version = 0
        self.config, self.engine, self.executor, self.contexts = config, engine, executor, contexts
        self.health, self.plans, self.learner, self.library = health, plans, learner, library
        self.defined, self.capabilities = defined, capabilities
        self.timer, self.clock = timer, clock
        self.records: deque[CallRecord] = deque(maxlen=MAX_RECORDS)
        self._lock = threading.Lock()

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
        except StorageError:  # an unreachable store: the VM reports the symbol as unbound
            return Claim.NO
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
            record.detail = preview(value)
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
        for target, layer in zip(targets, (decision.layer, Layer.FALLBACK)):
            # The engine already applied the security context; checking again right before
            # anything leaves this node keeps the privacy rule true whatever engine is used.
            problem = security_problem(self.config.security, ctx, target, layer)
            if problem is not None:
                record.attempts.append(f"{target}: skipped, {problem}")
                continue
            started = self.timer()
            try:
                value, cost = self.executor.run(target, call)
            except (ProviderUnavailable, ProviderError) as err:
                self._observe(call.name, target, False, self.timer() - started, 0.0)
                record.attempts.append(f"{target}: {_error_text(err)}")
                last_error = err
                continue
            except StorageError as err:
                raise StorageFailure(str(target), str(err)) from err
            self._observe(call.name, target, True, self.timer() - started, cost)
            record.cost += cost
            if target != decision.target:
                record.target, record.layer = str(target), str(Layer.FALLBACK)
                record.reason += f"; {decision.target} failed, ran on route fallback"
            return value
        if last_error is None:
            record.outcome = "refused"
            raise SecurityViolation(call.name, "; ".join(record.attempts))
        record.outcome = "unavailable"
        raise last_error

    def _observe(self, symbol: str, target: ExecTarget, ok: bool, latency_s: float,
                 cost: float) -> None:
        self.health.record(target, ok)
        self.learner.record(symbol, target, ok, latency_s, cost)

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
        return taken


def _describe(target: ExecTarget | None) -> str:
    return str(target) if target is not None else "-"


def _error_text(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"
