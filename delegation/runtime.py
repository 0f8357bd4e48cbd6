"""`Runtime`: the embedded delegation engine around one RTFS VM.

    runtime = Runtime(load_config("delegation.toml"), environ=os.environ)
    result = runtime.run_file("plan.rtfs")
    result.value, result.calls, result.functions

Everything runs in this process: local caches, a local-directory L4 by default, no Ray. Each
top-level `defn` is looked up in L4 by its source hash before it is compiled (a hit skips the
compiler), and published after it is compiled; every routed call goes through the
`DelegationRouter`. L1 plans and learned outcomes are restored when the runtime starts and
saved after every run, beside the local L4 store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from delegation.codelib import CodeLibrary
from delegation.config import DelegationConfig, SecurityLevel, default_config
from delegation.context import ContextFactory
from delegation.engine import (
    Decision,
    ResilientDelegationEngine,
    SecurityAwareDelegationEngine,
    StaticDelegationEngine,
)
from delegation.errors import StorageFailure
from delegation.executor import Executor
from delegation.health import HealthMonitor
from delegation.l1 import L1PlanCache
from delegation.learning import Learner
from delegation.planstore import PlanStore
from delegation.providers import build_registry
from delegation.providers.registry import ProviderRegistry
from delegation.router import DelegationRouter
from delegation.trace import CallRecord
from rtfs import hashing
from rtfs.compiler import compile_program
from rtfs.errors import RtfsError, UnboundSymbolError
from rtfs.reader import Atom, Form, Seq, read
from rtfs.router import CallKind, RoutedCall
from rtfs.values import Closure, Keyword, Map, Symbol, own_names
from rtfs.vm import VM
from storage import StorageError, open_l4
from storage.signing import load_key_list

PLANS_FILE = "l1-plans.msgpack"
OUTCOMES_FILE = "outcomes.msgpack"


@dataclass
class FunctionRecord:
    """How a top-level `defn` got its code: compiled here, or loaded from L4."""

    name: str
    source_hash: str
    origin: str  # "compiled" | "compiled+published" | "l4"
    detail: str = ""


@dataclass
class RunResult:
    """What `Runtime.run` returns: the last value, each top-level value, and the trace."""

    value: Any
    values: list[Any]
    calls: list[CallRecord]
    functions: list[FunctionRecord] = field(default_factory=list)


class Runtime:
    """One embedded delegation engine and the VM it routes for.

    Args:
        config: the policy (default: the built-in offline configuration).
        environ: environment variables, read only for API keys and runner settings.
        out: where RTFS `println` writes (default stdout).
        clock: wall clock (plan timestamps); monotonic: health and TTL clock; timer: latency.
        l4_index: an already-open L4 index to use instead of the configured store.
        plans: the L1 plan store to share (default: a local `L1PlanCache` restored from the
            state directory and saved back after every run).
        learner: the outcome learner to share (default: a local one, restored and saved
            like the plans).
        registry: the providers to share (default: built from the config and `environ`).
        library: the L4 code library to share (default: opened from `l4_index` or the
            configured store; ignored when L4 is disabled).

    Injected parts belong to the caller, who restores and persists them; the runtime only
    restores and saves the parts it made itself.
    """

    def __init__(self, config: DelegationConfig | None = None, *,
                 environ: Mapping[str, str] | None = None, out: IO[str] | None = None,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 timer: Callable[[], float] = time.perf_counter,
                 l4_index: Any = None, plans: PlanStore | None = None,
                 learner: Learner | None = None, registry: ProviderRegistry | None = None,
                 library: CodeLibrary | None = None) -> None:
        self.config = config or default_config()
        cfg = self.config
        self.registry = registry if registry is not None else build_registry(
            cfg, environ or {}, clock=monotonic, timer=timer)
        self._owns_plans, self._owns_learner = plans is None, learner is None
        self.plans: PlanStore = plans if plans is not None else L1PlanCache(
            cfg.cache_ttl_s, cfg.l1_max_entries, timer=monotonic, wall_clock=clock)
        self.learner = learner if learner is not None else Learner()
        self.plans_restored = 0
        if self._owns_plans:
            self.plans_restored = self.plans.load(cfg.state_dir / PLANS_FILE).restored
        if self._owns_learner:
            self.learner.load(cfg.state_dir / OUTCOMES_FILE)
        self.library: CodeLibrary | None = None
        if cfg.enable_l4_cache:
            self.library = library if library is not None else self._open_library(l4_index)
        self.health = HealthMonitor(self.registry, timer=monotonic)
        static = StaticDelegationEngine(cfg, plans=self.plans,
                                        capabilities=self.registry.capabilities,
                                        l4=self.library, learner=self.learner)
        self.engine = ResilientDelegationEngine(
            SecurityAwareDelegationEngine(static, cfg, self.health,
                                          capabilities=self.registry.capabilities), self.health)
        self.contexts = ContextFactory(cfg, self.health, self.registry.targets(), monotonic)
        self.router = DelegationRouter(
            config=cfg, engine=self.engine,
            executor=Executor(self.registry, self.library, lambda: self.vm),
            contexts=self.contexts, health=self.health, plans=self.plans,
            learner=self.learner, library=self.library,
            defined=lambda name: name in self.vm.globals,
            capabilities=self.registry.capabilities, timer=timer, clock=clock)
        self.vm = VM(router=self.router, out=out)
        self.last_calls: list[CallRecord] = []
        self.last_functions: list[FunctionRecord] = []
        self._pending: list[tuple[str, Any, str]] = []

    def _open_library(self, index: Any) -> CodeLibrary:
        l4 = self.config.l4
        if index is None:
            index = open_l4(l4.store_uri, signing_key=l4.signing_key,
                            trusted_keys=_key_values(l4.trusted_keys),
                            revoked_keys=_key_values(l4.revoked_keys),
                            state_dir=self.config.state_dir)
        return CodeLibrary(index)

    # -- running ---------------------------------------------------------------------------------
    def run(self, source: str) -> RunResult:
        """Run an RTFS program; raises the first RTFS error (the trace so far is kept in
        `last_calls`). Plans and outcomes are saved afterwards either way."""
        self.last_calls, self.last_functions = [], []
        self._pending = []
        values = []
        try:
            forms = read(source)
            # One batch ahead of the first call: a shared plan store fetches the plans of every
            # name the program mentions, so no decision waits on a round trip.
            self.plans.prefetch(sorted(names_in(forms)))
            for form in forms:
                values.append(self._run_form(form))
        finally:
            self._publish_pending()
            self.last_calls = self.router.take_records()
            self.save()
        return RunResult(values[-1] if values else None, values, self.last_calls,
                         self.last_functions)

    def run_file(self, path: str | Path) -> RunResult:
        return self.run(Path(path).read_text(encoding="utf-8"))

    def _run_form(self, form: Form) -> Any:
        name = _defn_name(form)
        lookup_note = ""
        if name is not None and self.library is not None:
            source_hash = hashing.defn_source_hash(form, name, self.vm.source_hash_of).hex()
            try:
                cached = self.library.by_source(source_hash)
            except (StorageError, RtfsError) as err:
                cached, lookup_note = None, f"(L4 lookup failed: {err})"
            if cached is not None:
                self.last_functions.append(FunctionRecord(name, source_hash, "l4",
                                                          "loaded verified bytecode"))
                closure = Closure(cached, (), name)
                self.vm.define(name, closure)
                return closure
        code = compile_program([form], resolve_source=self.vm.source_hash_of)
        value = self.vm.run(code)
        if name is not None:
            self._pending.append((name, code.children()[0], lookup_note))
        return value

    def _publish_pending(self) -> None:
        """Publish what this run compiled, once the run has shown every name each function
        was defined under (an alias can make a function sensitive)."""
        pending, self._pending = self._pending, []
        for name, code, note in pending:
            self._publish(name, code, note)

    def _publish(self, name: str, code: Any, note: str) -> None:
        source_hash = code.source_hash_hex()
        if self.library is None:
            self.last_functions.append(FunctionRecord(name, source_hash, "compiled"))
            return
        kept = self._kept_off_node(name)
        if kept is not None:
            self.last_functions.append(FunctionRecord(name, source_hash, "compiled", kept))
            return
        try:
            record = self.library.publish(code)
        except StorageError as err:
            raise StorageFailure(name, f"publish failed: {err}") from err
        detail = f"{record.pointer} {note}".rstrip()
        self.last_functions.append(FunctionRecord(name, source_hash, "compiled+published",
                                                  detail))

    def _kept_off_node(self, name: str) -> str | None:
        """Why `name`'s code must not be published (sensitive, store off this node), or None.

        A sensitive function's bytecode holds its constants (strings included): it goes to a
        store on this node (`file://`, `memory://`) or nowhere.
        """
        assert self.library is not None
        if self.library.on_this_node:
            return None
        security = self.config.security
        where = f"not published to {self.library.store_uri} (off this node)"
        if security.level is SecurityLevel.MAXIMUM:
            return f"security level maximum: {where}"
        names = own_names(self.vm.globals.get(name)) | {name}
        if any(security.is_sensitive(n) for n in names):
            return f"sensitive: {where}"
        return None

    # -- decisions without running -----------------------------------------------------------
    def decide(self, symbol: str, args: tuple[Any, ...] = (), metadata: Any = None) -> Decision:
        """What the engine would decide for a call of `symbol` with these arguments."""
        callee = self.vm.globals.get(symbol)
        hint = callee.code.hint if isinstance(callee, Closure) else None
        ctx = self.contexts.context(symbol, args, metadata, hint, has_source=callee is not None)
        return self.engine.decide(ctx)

    def route_call(self, symbol: str, args: Sequence[Any] = (), metadata: Any = None) -> Any:
        """Route one call of `symbol` as if a plan had written `(symbol args...)`.

        The callee is whatever this runtime's VM binds to `symbol` (a local run calls it);
        the decision, execution, fallback and recording are those of any routed call.

        Raises:
            RtfsError / DelegationError: as the call would inside a plan.
        """
        callee = self.vm.globals.get(symbol)
        meta = metadata if isinstance(metadata, Map) else Map(metadata or {})
        hint = callee.code.hint if isinstance(callee, Closure) else None
        call_args = tuple(args)

        def run_local() -> Any:
            if callee is None:
                raise UnboundSymbolError(f"unbound symbol: {symbol}")
            return self.vm.call(callee, list(call_args), route=False)

        return self.router.route(RoutedCall(symbol, CallKind.FUNCTION, callee, hint, meta,
                                            call_args, run_local))

    def save(self) -> None:
        """Persist what this runtime owns: L1 plans (flushed either way) and outcomes."""
        self.plans.flush()
        state = self.config.state_dir
        if self._owns_plans:
            self.plans.save(state / PLANS_FILE)
        if self._owns_learner:
            self.learner.save(state / OUTCOMES_FILE)


def names_in(forms: Sequence[Form]) -> set[str]:
    """Every symbol and keyword name the forms mention: the agents a run may route (a
    superset; a name that is never called costs one key in the prefetch batch)."""
    names: set[str] = set()
    stack: list[Form] = list(forms)
    while stack:
        form = stack.pop()
        if isinstance(form, Seq):
            stack.extend(form.items)
        elif isinstance(form, Atom) and isinstance(form.value, (Symbol, Keyword)):
            names.add(form.value.name)  # type: ignore[union-attr]  # _Interned sets it
    return names


def _defn_name(form: Form) -> str | None:
    if (isinstance(form, Seq) and form.kind == "list" and len(form.items) > 2
            and isinstance(form.items[0], Atom) and form.items[0].value is Symbol("defn")):
        for item in form.items[1:3]:
            if isinstance(item, Atom) and isinstance(item.value, Symbol):
                return item.value.name
    return None


def _key_values(refs: Any) -> list[str]:
    values: list[str] = []
    for ref in refs:
        values.extend(load_key_list(ref.path) if ref.path is not None else [ref.value])
    return values
