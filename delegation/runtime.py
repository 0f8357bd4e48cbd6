"""`Runtime`: the embedded delegation engine around one RTFS VM.

    runtime = Runtime(load_config("delegation.toml"), environ=os.environ)
    result = runtime.run_file("plan.rtfs")
    result.value, result.calls, result.functions

Everything runs in this process: local caches, a local-directory L4 by default, no Ray. Each
top-level `defn` is looked up in L4 by its source hash before it is compiled (a hit skips the
compiler), and published after it is compiled; every routed call goes through the
`DelegationRouter`. L1 plans, learned outcomes and L3 context tables are restored when the
runtime starts and saved after every run, in the state directory; L2 (its entries and
calibration book, there too) is built, and its model loaded, on the first model call where
it pays.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from delegation.codelib import CodeLibrary
from delegation.config import DelegationConfig, SecurityLevel, default_config
from delegation.context import ContextFactory
from delegation.engine import (
    Decision,
    Engine,
    ResilientDelegationEngine,
    SecurityAwareDelegationEngine,
    StaticDelegationEngine,
)
from delegation.errors import ConfigError, PlanCacheError
from delegation.executor import Executor
from delegation.federation import FederatedProviders, FederatingEngine, Federation
from delegation.health import HealthMonitor
from delegation.l1 import L1PlanCache
from delegation.l2.errors import CacheStateError
from delegation.l2.serving import ModelResults
from delegation.l3.cache import ContextualCache
from delegation.learning import Learner
from delegation.planstore import PlanStore
from delegation.providers import build_registry
from delegation.providers.registry import ProviderRegistry
from delegation.remotecaller import RemoteCaller, RemoteCallerEngine, refusing_builtins
from delegation.router import DelegationRouter
from delegation.trace import CallRecord
from rtfs.bytecode import Code
from rtfs.compiler import compile_top_level_form
from rtfs.deadline import Deadline
from rtfs.errors import DeadlineExceeded, UnboundSymbolError
from rtfs.hashing import ProgramHashes, program_source_hashes
from rtfs.macros import MacroTable
from rtfs.reader import Atom, Form, Seq, read
from rtfs.router import CallKind, RoutedCall, unknown_capability
from rtfs.values import Closure, Keyword, Map, Symbol, own_names
from rtfs.vm import VM
from storage import (
    BackendNotInstalled,
    SigningKeyError,
    StorageError,
    StoreURIError,
    open_l4,
)
from storage.signing import store_key_path

if TYPE_CHECKING:
    from delegation.l2.cache import SemanticCache
    from delegation.l2.store import L2Store

PLANS_FILE = "l1-plans.msgpack"
OUTCOMES_FILE = "outcomes.msgpack"
CONTEXTS_FILE = "l3-contexts.msgpack"
L2_ENTRIES_FILE = "l2-entries.msgpack"


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
        l2_store: where L2 keeps its entries (default: an in-process store restored from
            the state directory and saved back); ignored when L2 is disabled.
        l3: the contextual cache to share (default: a local one, restored and saved like
            the plans); ignored when L3 is disabled.
        warn: called with each warning line (a state file set aside, L4 down, ...); they
            are also kept in `warnings`.
        read_only: write nothing (no state saved, no code published, no store or key
            created): for commands that only look, such as `delegation decide`, and for
            steps run for another node.
        health, l2, l3: the circuit breakers, semantic and contextual caches to share (an
            arbiter serves each request with its own runtime around the node's shared parts).
        federation: the fleet's peer arbiters: a call that cannot run here goes to one of
            them (`delegation.federation`); None: never.
        remote_caller: the run is a step for a caller from outside this node (another node,
            HTTP): it may not call this node's sensitive functions or use its models and
            providers (`delegation.remotecaller`).

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
                 library: CodeLibrary | None = None, l2_store: L2Store | None = None,
                 warn: Callable[[str], None] | None = None, read_only: bool = False,
                 health: HealthMonitor | None = None, l2: ModelResults | None = None,
                 l3: ContextualCache | None = None,
                 federation: Federation | None = None,
                 remote_caller: RemoteCaller | None = None) -> None:
        self.config = config or default_config()
        cfg = self.config
        self.registry = registry if registry is not None else build_registry(
            cfg, environ or {}, clock=monotonic, timer=timer)
        self._owns_plans, self._owns_learner = plans is None, learner is None
        self.plans: PlanStore = plans if plans is not None else L1PlanCache(
            cfg.cache_ttl_s, cfg.l1_max_entries, timer=monotonic, wall_clock=clock)
        self.learner = learner if learner is not None else Learner()
        self.warnings: list[str] = []
        self._warn_out = warn
        self._monotonic = monotonic
        self.read_only = read_only
        self.plans_restored = 0
        if self._owns_plans:
            report = self._restore(self.plans.load, cfg.state_dir / PLANS_FILE)
            self.plans_restored = report.restored if report is not None else 0
        if self._owns_learner:
            self._restore(self.learner.load, cfg.state_dir / OUTCOMES_FILE)
        self._owns_l2, self._owns_l3 = l2 is None, l3 is None
        self.l3 = (l3 if l3 is not None else ContextualCache(cfg.l3, timer=monotonic)
                   ) if cfg.l3.enabled else None
        if self.l3 is not None and self._owns_l3:
            self._restore(self.l3.load, cfg.state_dir / CONTEXTS_FILE)
        self._l2_store = l2_store
        self.l2 = (l2 if l2 is not None else ModelResults(
            cfg, self.learner, self._make_l2_cache, warn=self.warn, timer=timer)
                   ) if cfg.l2.enabled else None
        self._monotonic, self._clock = monotonic, clock
        self.library: CodeLibrary | None = None
        if cfg.enable_l4_cache:
            # an injected library is the caller's: so is reporting its outages
            self.library = library if library is not None else self._open_library(l4_index)
        # With a federation, the peers it discovers are providers too (executor and health).
        providers: Any = (FederatedProviders(self.registry, federation)
                          if federation is not None else self.registry)
        self.health = health if health is not None else HealthMonitor(providers,
                                                                      timer=monotonic)
        static = StaticDelegationEngine(cfg, plans=self.plans,
                                        capabilities=self.registry.capabilities,
                                        l4=self.library, learner=self.learner, l3=self.l3,
                                        usable=self.health.circuit_ok)
        self.engine: Engine = ResilientDelegationEngine(
            SecurityAwareDelegationEngine(static, cfg, self.health,
                                          capabilities=self.registry.capabilities), self.health)
        if federation is not None:
            self.engine = FederatingEngine(self.engine, federation, cfg.security, self.health)
        if remote_caller is not None:  # outermost: no other layer can route around it
            self.engine = RemoteCallerEngine(self.engine, remote_caller)
        self.contexts = ContextFactory(cfg, self.health, self.registry.targets(), monotonic)
        self.router = DelegationRouter(
            config=cfg, engine=self.engine,
            executor=Executor(providers, self.library, lambda: self.vm,
                              bindable=self._bindable(remote_caller)),
            contexts=self.contexts, health=self.health, plans=self.plans,
            learner=self.learner, library=self.library,
            defined=lambda name: name in self.vm.globals,
            capabilities=self.registry.capabilities, timer=timer, clock=clock, l2=self.l2,
            l3=self.l3)
        self.vm = VM(router=self.router, out=out)
        if remote_caller is not None:
            for name, stand_in in refusing_builtins(self.vm.builtins, cfg.security,
                                                    remote_caller).items():
                self.vm.define(name, stand_in)
        self.last_calls: list[CallRecord] = []
        self.last_functions: list[FunctionRecord] = []
        self._pending: list[tuple[str, Any, str]] = []
        self._deadline: Deadline | float | None = None

    def _bindable(self, remote_caller: RemoteCaller | None) -> Callable[[str], bool]:
        """Which dependencies of published code may be bound into this VM: for a remote
        caller, none that is sensitive (a value of one would escape the routed-call check)."""
        if remote_caller is None:
            return lambda name: True
        security = self.config.security
        return lambda name: not security.is_sensitive(name)

    def warn(self, message: str) -> None:
        """Report something that costs speed, never the answer (one line)."""
        self.warnings.append(message)
        if self._warn_out is not None:
            self._warn_out(message)

    def _restore(self, load: Callable[[Path], Any], path: Path) -> Any:
        """Restore a state file; a corrupt one is renamed aside (kept for inspection) and the
        runtime starts without it: state is a cache, losing it costs speed only."""
        try:
            return load(path)
        except (PlanCacheError, CacheStateError) as err:
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            try:
                path.replace(aside)
                where = f"moved to {aside.name}"
            except OSError as move_err:
                where = f"could not be moved aside: {move_err.strerror or move_err}"
            self.warn(f"{err}; {where}; starting without it")
            return None

    def _make_l2_cache(self) -> SemanticCache:
        """The L2 semantic cache, built on first use (it loads the embedding model)."""
        from delegation.l2.book import CalibrationBook  # numpy and the model: only when used
        from delegation.l2.cache import SemanticCache
        from delegation.l2.models import make_embedder
        from delegation.l2.persist import load_store
        from delegation.l2.store import LocalL2Store

        try:
            book = CalibrationBook.in_state_dir(self.config.state_dir)
        except CacheStateError as err:
            self.warn(f"{err}; L2 uses the shipped default calibration this run")
            book = CalibrationBook()
        store: L2Store
        if self._l2_store is not None:
            store = self._l2_store  # the caller's (a fleet's): restored and kept by it
        else:
            store = local = LocalL2Store(self.config.l2.max_entries, self.config.l2.ttl_s,
                                         timer=self._monotonic,
                                         exact_max=self.config.l2.exact_index_max)
            self._restore(lambda path: load_store(local, path, wall_clock=self._clock),
                          self.config.state_dir / L2_ENTRIES_FILE)
        return SemanticCache(self.config.l2, make_embedder(self.config.l2.model), store=store,
                             book=book, wall_clock=self._clock)

    def _save_l2(self, cache: SemanticCache) -> None:
        """The calibration book (shadow checks counted this run) and the local entries."""
        from delegation.l2.persist import save_store  # loaded with the cache already
        from delegation.l2.store import LocalL2Store

        if cache.book.namespaces():
            cache.book.save()
        if isinstance(cache.store, LocalL2Store) and self._l2_store is None:
            save_store(cache.store, self.config.state_dir / L2_ENTRIES_FILE)

    def _open_library(self, index: Any) -> CodeLibrary | None:
        """The configured L4 store's code library; None (with a warning) when the store
        cannot be opened for a reason that is not the configuration's fault."""
        l4 = self.config.l4
        if index is None:
            signing_key: Any = l4.signing_key
            if self.read_only:
                if l4.store_path is not None and not l4.store_path.is_dir():
                    return None  # nothing was ever published there
                signing_key = self._read_only_key()
            try:
                index = open_l4(l4.store_uri, signing_key=signing_key,
                                connect_timeout_s=l4.connect_timeout_s,
                                read_timeout_s=l4.read_timeout_s, down_for_s=l4.down_for_s,
                                timer=self._monotonic,
                                trusted_keys=_key_values(l4.trusted_keys),
                                revoked_keys=_key_values(l4.revoked_keys),
                                state_dir=self.config.state_dir)
            except (SigningKeyError, StoreURIError, BackendNotInstalled) as err:
                raise ConfigError(str(err), self.config.source, ("delegation", "l4")) from err
            except (StorageError, OSError) as err:
                self.warn(f"L4 store {l4.store_uri} cannot be opened "
                          f"({getattr(err, 'strerror', None) or err}); running without L4")
                return None
        library = CodeLibrary(index)
        library.on_outage(lambda outage: self.warn(
            f"{outage}: L4 lookups miss and publishes are skipped"
            + (" for the rest of this run" if outage.until_s is None else
               f" for {outage.until_s - outage.since_s:g} s")))
        return library

    def _read_only_key(self) -> Any:
        """The signing key without creating one: reading trusts this node's own publications
        only if its per-store key already exists; a throwaway key signs nothing."""
        l4 = self.config.l4
        if l4.signing_key is not None:
            return l4.signing_key
        existing = store_key_path(self.config.state_dir, l4.store_uri)
        return existing if existing.is_file() else Ed25519PrivateKey.generate()

    # -- running ---------------------------------------------------------------------------------
    def run(self, source: str, *, deadline: Deadline | float | None = None) -> RunResult:
        """Run an RTFS program; raises the first RTFS error (the trace so far is kept in
        `last_calls`). Plans and outcomes are saved afterwards either way.

        `deadline` (a `rtfs.deadline.Deadline`, or seconds on the VM's clock) stops the run
        with `DeadlineExceeded`: the VM checks it cooperatively, routed calls carry it and
        providers wait at most what is left of it.
        """
        self._deadline = deadline
        self.last_calls, self.last_functions = [], []
        self._pending = []
        values = []
        try:
            # One object per form: names_in and the hashes see the same forms (a form that
            # `read` gives is made anew on each access).
            forms = list(read(source))
            # One batch ahead of the first call: a shared plan store fetches the plans of every
            # name the program mentions, so no decision waits on a round trip.
            self.plans.prefetch(sorted(names_in(forms)))
            # Every form is read and hashed first: a definition's source hash covers the
            # functions it calls even when they are defined later (forward references).
            hashes = program_source_hashes(forms, resolve=self.vm.source_hash_of)
            macros = MacroTable()
            for index in range(len(hashes.forms)):
                values.append(self._run_form(hashes, index, macros))
        finally:
            self._publish_pending()
            self.last_calls = self.router.take_records()
            self.save()
        return RunResult(values[-1] if values else None, values, self.last_calls,
                         self.last_functions)

    def run_file(self, path: str | Path) -> RunResult:
        return self.run(Path(path).read_text(encoding="utf-8"))

    def _run_form(self, hashes: ProgramHashes, index: int, macros: MacroTable) -> Any:
        """Run top-level form `index`; a `defn` is loaded from L4 by its source hash when a
        trusted node published it (no compiling), else compiled here and published later."""
        form = hashes.forms[index]
        name = _defn_name(form)
        source_hash = hashes.defined_by(index, name) if name is not None else None

        def compile_form() -> Code:
            return compile_top_level_form(hashes, index, macros=macros)

        if name is None or source_hash is None or self.library is None:
            return self.vm.run(compile_form(), deadline=self._deadline)
        loaded = self.library.load_or_compile(source_hash.hex(), compile_form)
        if loaded.from_l4:
            self.last_functions.append(FunctionRecord(name, source_hash.hex(), "l4",
                                                      "loaded verified bytecode"))
            closure = Closure(loaded.code, (), name)
            self.vm.define(name, closure)
            return closure
        value = self.vm.run(loaded.code, deadline=self._deadline)
        self._pending.append((name, loaded.code.children()[0], loaded.note))
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
        if self.read_only:
            self.last_functions.append(FunctionRecord(name, source_hash, "compiled",
                                                      "not published (read-only runtime)"))
            return
        kept = self._kept_off_node(name)
        if kept is not None:
            self.last_functions.append(FunctionRecord(name, source_hash, "compiled", kept))
            return
        try:
            record = self.library.publish(code)
        except StorageError as err:  # L4 is a cache: the function is compiled and runs
            why = (f"L4 down: {self.library.outage}" if self.library.outage is not None
                   else f"publish failed: {err}")
            self.last_functions.append(FunctionRecord(name, source_hash, "compiled",
                                                      f"not published ({why})"))
            if self.library.outage is None:
                self.warn(f"{name}: {why}")
            return
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

    def route_call(self, symbol: str, args: Sequence[Any] = (), metadata: Any = None, *,
                   deadline: Deadline | None = None,
                   kind: CallKind = CallKind.FUNCTION) -> Any:
        """Route one call of `symbol` as if a plan had written `(symbol args...)` (or, with
        `kind=CallKind.CAPABILITY`, `(call :symbol args...)`).

        The callee is whatever this runtime's VM binds to `symbol` (a local run calls it);
        the decision, execution, fallback and recording are those of any routed call.
        `deadline` bounds it: a local run stops at it, a provider waits at most what is left.

        Raises:
            RtfsError / DelegationError: as the call would inside a plan.
        """
        capability = kind is CallKind.CAPABILITY
        callee = None if capability else self.vm.globals.get(symbol)
        meta = metadata if isinstance(metadata, Map) else Map(metadata or {})
        hint = callee.code.hint if isinstance(callee, Closure) else None
        call_args = tuple(args)

        def run_local() -> Any:
            if capability:
                raise unknown_capability(symbol)
            if callee is None:
                raise UnboundSymbolError(f"unbound symbol: {symbol}")
            return self.vm.call(callee, list(call_args), route=False, deadline=deadline)

        if deadline is not None and deadline.expired():
            raise DeadlineExceeded(f"{symbol}: the deadline passed before the call started")
        return self.router.route(RoutedCall(symbol, kind, callee, hint, meta,
                                            call_args, run_local, names=own_names(callee),
                                            deadline=deadline))

    def save(self) -> None:
        """Persist what this runtime owns: L1 plans (flushed either way) and outcomes."""
        if self.read_only:
            return
        self.plans.flush()
        state = self.config.state_dir
        try:
            if self._owns_plans:
                self.plans.save(state / PLANS_FILE)
            if self._owns_learner:
                self.learner.save(state / OUTCOMES_FILE)
            if self.l3 is not None and self._owns_l3:
                self.l3.save(state / CONTEXTS_FILE)
            cache = self.l2.cache if self.l2 is not None and self._owns_l2 else None
            if cache is not None:
                self._save_l2(cache)
        except (PlanCacheError, CacheStateError, OSError) as err:  # a cache: the answer stands
            self.warn(f"state not saved: {err}")


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
            names.add(form.value.name)
    return names


def _defn_name(form: Form) -> str | None:
    if (isinstance(form, Seq) and form.kind == "list" and len(form.items) > 2
            and isinstance(form.items[0], Atom) and form.items[0].value is Symbol("defn")):
        for item in form.items[1:3]:
            if isinstance(item, Atom) and isinstance(item.value, Symbol):
                return item.value.name
    return None


def _key_values(refs: Any) -> list[str]:
    return [key for ref in refs for key in ref.keys]
