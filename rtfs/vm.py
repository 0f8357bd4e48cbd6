"""The virtual machine: runs verified `Code`.

One `VM` holds the global environment, the router and the output stream. Every call into it
(`run`, `call`) gets its own `Execution`, so calls from several threads at once, and calls
re-entering from a builtin or a router, never share a stack. Inside one execution RTFS calls
do not recurse in Python: frames live on an explicit list, so depth is bounded by
`max_depth`, not by Python's recursion limit.

The fast path (rtfs.fast): with `fast=True` (the default) a function is translated into a
Python function on its first call and runs as Python from then on; the loop below stays for
code the translator does not cover and for calls nested deeper than `fast_limit` (translated
code recurses in Python, the loop does not). Both keep the same semantics: routing, errors
and their positions, `max_depth`, and the deadline.

Deadlines: `run` and `call` take `deadline=` (a `rtfs.deadline.Deadline`, or an absolute time
in seconds on the VM's `clock`). Nested calls, `parallel` branches and calls re-entering the
VM on the same thread (a router calling `vm.call`) inherit it; a run past it stops with
`DeadlineExceeded` at the position of the call it was making.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import IO, Any, cast

from rtfs import deadline as deadlines
from rtfs.bytecode import Code, Op
from rtfs.calls import (
    MISSING,
    NOT_CLAIMED,
    ONCE,
    apply_data,
    arity_error,
    bind_args,
    check_builtin_arity,
    claim,
    too_deep,
)
from rtfs.deadline import CHECK_EVERY, NEVER, Deadline
from rtfs.env import Globals
from rtfs.errors import (
    DeadlineExceeded,
    HostError,
    InternalError,
    MatchError,
    RtfsError,
    UnboundSymbolError,
    UserError,
)
from rtfs.fast import link
from rtfs.faults import as_rtfs_error, fault
from rtfs.ops import ErrorValue, error_matches, get_or, nth_or_nil, rest_from
from rtfs.printer import preview
from rtfs.router import CallKind, CallRouter, LocalRouter, RoutedCall, unknown_capability
from rtfs.values import (
    EMPTY_MAP,
    UNSET,
    Builtin,
    Cell,
    Closure,
    Map,
    RList,
    own_names,
    rtfs_equal,
)

DEFAULT_MAX_DEPTH = 10_000

# Plain ints for the dispatch loop (comparing IntEnum members is slower).
LOAD_CONST, LOAD_LOCAL, STORE_LOCAL = int(Op.LOAD_CONST), int(Op.LOAD_LOCAL), int(Op.STORE_LOCAL)
LOAD_DEREF, STORE_DEREF, MAKE_CELL = int(Op.LOAD_DEREF), int(Op.STORE_DEREF), int(Op.MAKE_CELL)
CELLIFY, LOAD_FREE, LOAD_CELLREF = int(Op.CELLIFY), int(Op.LOAD_FREE), int(Op.LOAD_CELLREF)
LOAD_FREEREF, LOAD_GLOBAL = int(Op.LOAD_FREEREF), int(Op.LOAD_GLOBAL)
DEF_GLOBAL = int(Op.DEF_GLOBAL)
LOAD_SELF, POP, DUP, JUMP = int(Op.LOAD_SELF), int(Op.POP), int(Op.DUP), int(Op.JUMP)
JUMP_IF_FALSE, CALL, CALL_GLOBAL = int(Op.JUMP_IF_FALSE), int(Op.CALL), int(Op.CALL_GLOBAL)
RETURN, MAKE_CLOSURE = int(Op.RETURN), int(Op.MAKE_CLOSURE)
JUMP_IF_FALSE_OR_POP = int(Op.JUMP_IF_FALSE_OR_POP)
JUMP_IF_TRUE_OR_POP = int(Op.JUMP_IF_TRUE_OR_POP)

_MISSING = MISSING


def fast_frames_limit() -> int:
    """How many translated calls may nest in Python before calls continue in the loop: each
    costs up to ~5 host frames (through higher-order builtins), and the host needs room."""
    return max(0, (sys.getrecursionlimit() - 250) // 5)


class VM:
    """Runs RTFS code against one global environment.

    Args:
        router: decides where routed calls run (default: everything local).
        out: where `println` writes (default: sys.stdout at the time of the call).
        max_depth: the deepest nesting of RTFS calls before `RtfsRecursionError`.
        builtins: the functions every program sees (default: the standard library).
        fast: translate functions to Python (rtfs.fast); False runs everything in the
            bytecode loop.
        translate_after: how many calls of a function run in the loop before it is
            translated (0: translate everything, top levels included, on first use).
        clock: the monotonic clock a deadline given as a number refers to.
    """

    def __init__(self, *, router: CallRouter | None = None, out: IO[str] | None = None,
                 max_depth: int = DEFAULT_MAX_DEPTH,
                 builtins: dict[str, Any] | None = None, fast: bool = True,
                 translate_after: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if builtins is None:
            from rtfs.stdlib import BUILTINS

            builtins = cast(dict[str, Any], BUILTINS)
        self.builtins: dict[str, Any] = builtins
        self.globals: Globals = Globals(builtins)
        self._router: CallRouter = router if router is not None else LocalRouter()
        self.out = out
        self.clock = clock
        self.fast = fast
        self.translate_after = translate_after
        self._max_depth = max_depth
        self.fast_limit = 0
        self._set_limits()
        self._leaves_vm: weakref.WeakKeyDictionary[Code, tuple[Any, bool]] = (
            weakref.WeakKeyDictionary())
        # translated functions linked to this VM when another VM linked their code first
        self.links: weakref.WeakKeyDictionary[Code, Any] = weakref.WeakKeyDictionary()
        self.linked_functions: weakref.WeakSet[Any] = weakref.WeakSet()
        self.globals.changed = self.relink_all

    # -- configuration that translated code depends on ------------------------------------
    @property
    def router(self) -> CallRouter:
        return self._router

    @router.setter
    def router(self, router: CallRouter) -> None:
        self._router = router
        self.relink_all()  # every resolved call site asks the new router again

    @property
    def max_depth(self) -> int:
        return self._max_depth

    @max_depth.setter
    def max_depth(self, value: int) -> None:
        self._max_depth = value
        self._set_limits()

    def _set_limits(self) -> None:
        self.fast_limit = min(self._max_depth, fast_frames_limit()) if self.fast else 0
        self.relink_all()

    def relink_all(self) -> None:
        """Make every translated function resolve its call sites again (the environment, the
        router or a limit changed)."""
        self.router_version = self._router.version
        for linked in list(getattr(self, "linked_functions", ())):
            linked.relink()

    # -- the environment -------------------------------------------------------------------
    def define(self, name: str, value: Any) -> None:
        """Bind the global `name`; a function value remembers it as one of its names (policy
        such as sensitivity follows the function, whatever name a call site uses)."""
        if type(value) is Closure and name not in value.aliases:
            value.aliases = value.aliases | {name}
        self.globals[name] = value

    def write(self, text: str) -> None:
        (self.out or sys.stdout).write(text)

    # -- running ---------------------------------------------------------------------------
    def run(self, code: Code, *, deadline: Deadline | float | None = None) -> Any:
        """Run the top level of a compiled program and return its value.

        Raises:
            RtfsError: what the program raised; `DeadlineExceeded` once past `deadline`.
        """
        return self._enter(Closure(code, ()), [], deadline, route=False)

    def call(self, fn: Any, args: Sequence[Any], *, route: bool = True,
             deadline: Deadline | float | None = None) -> Any:
        """Call an RTFS function value. Re-entrant and safe from several threads at once.

        With `route` (the default) a hinted function goes through the router, as it would
        from RTFS code; without it the call runs here. A call made while this thread is
        already running RTFS code in this VM (from a router or a host function) continues
        that execution's depth and deadline.
        """
        return self._enter(fn, list(args), deadline, route)

    def _enter(self, fn: Any, args: list[Any], deadline: Deadline | float | None,
               route: bool) -> Any:
        outer = deadlines.current()
        limit = deadline if isinstance(deadline, Deadline) or deadline is None else Deadline(
            float(deadline), self.clock)
        if outer is not None and outer.deadline is not None:
            limit = outer.deadline.earliest(limit)
        depth = outer.depth if outer is not None and outer.vm is self else 0
        execution = Execution(self, depth, limit)
        if self._router.version != self.router_version:
            self.relink_all()  # the policy changed since the last run: call sites ask again
        deadlines.swap(execution)
        try:
            execution.check_deadline()
            return execution.call(fn, args) if route else execution.call_direct(fn, args)
        except RtfsError:
            raise
        except Exception as exc:  # a host fault outside any frame (e.g. a builtin called here)
            raise as_rtfs_error(exc) from exc
        finally:
            deadlines.swap(outer)

    def linked(self, code: Code, *, hot: bool = False) -> Any:
        """`code` translated and linked to this VM (rtfs.fast), or None when it runs in the
        loop (fast path off, code the translator does not cover, or code not yet called
        `translate_after` times, unless `hot`: about to be called many times)."""
        return link(self, code, _SLOW_OPS, hot) if self.fast else None

    def source_hash_of(self, name: str) -> bytes | None:
        """The source hash of the user function bound to `name`, for the compiler."""
        value = self.globals.get(name)
        if isinstance(value, Closure) and self.builtins.get(name) is not value:
            return value.code.source_hash
        return None

    def leaves_vm(self, code: Code) -> bool:
        """Whether running `code` may call out of the VM (routed, blocking or unknown calls),
        which is what makes running `parallel` branches on threads worth it."""
        token = (self.router, self.router.version)
        cached = self._leaves_vm.get(code)
        if cached is not None and cached[0] == token:
            return cached[1]
        result = self._scan_leaves_vm(code)
        self._leaves_vm[code] = (token, result)
        return result

    def _scan_leaves_vm(self, code: Code) -> bool:
        for op, arg in zip(code.ops, code.args):
            if op in (CALL, Op.CALL_CAP):
                return True
            if op == CALL_GLOBAL:
                name = code.sites[arg].name or ""
                callee = self.globals.get(name)
                if not (isinstance(callee, Builtin) and callee.pure) or self.router.claims(name):
                    return True
        return any(self._scan_leaves_vm(child) for child in code.children())


class Execution:
    """The state of one call into the VM on one thread.

    `depth` is the depth of the frame calling out of RTFS code (into a builtin, a router, a
    nested run): the loop and translated code set it before such a call, and everything
    that sets it for a call (translated code's helpers, `call`, `call_direct`, routing)
    puts it back afterwards. `ticks` counts steps down to the next reading of the
    deadline's clock.
    """

    __slots__ = ("deadline", "depth", "ticks", "vm")

    def __init__(self, vm: VM, depth: int = 0, deadline: Deadline | None = None) -> None:
        self.vm = vm
        self.depth = depth
        self.deadline = deadline
        self.ticks = CHECK_EVERY if deadline is not None else NEVER

    # -- the deadline ----------------------------------------------------------------------
    def tick(self, steps: int = 1) -> None:
        """Count `steps` steps of work; every CHECK_EVERY steps, check the deadline.
        Builtins call this inside loops whose length the program controls."""
        ticks = self.ticks - steps
        self.ticks = ticks
        if ticks < 0:
            self.check_deadline()

    def check_deadline(self) -> None:
        """Raise DeadlineExceeded if the deadline has passed (reads the clock now)."""
        deadline = self.deadline
        if deadline is None:
            self.ticks = NEVER
        elif deadline.clock() >= deadline.at_s:
            self.ticks = 0  # stay expired: every later step raises again
            raise DeadlineExceeded("deadline exceeded: the run was stopped")
        else:
            self.ticks = CHECK_EVERY

    # -- calling values ------------------------------------------------------------------------
    def call(self, fn: Any, args: list[Any]) -> Any:
        """Apply any callable RTFS value, routing hinted functions."""
        kind = type(fn)
        if kind is Closure:
            if fn.code.hint is not None:
                return self._route(fn.name or fn.code.name, fn, args, EMPTY_MAP, fn.code, -1)
            return self._run_closure(fn, args)
        ticks = self.ticks - 1
        self.ticks = ticks
        if ticks < 0:
            self.check_deadline()
        if kind is Builtin:
            if len(args) < fn.min_args or (fn.max_args is not None and len(args) > fn.max_args):
                check_builtin_arity(fn, len(args))
            return fn.fn(self, *args) if fn.needs_vm else fn.fn(*args)
        return apply_data(fn, args)

    def caller(self, fn: Any, argc: int) -> Callable[..., Any]:
        """A Python function that calls the RTFS function value `fn` with `argc` arguments
        exactly as `call` would (routing a hinted function, counting steps towards the
        deadline, raising its arity error on the first call), for builtins that call one
        function many times: it resolves what `call` decides per call once."""
        kind = type(fn)
        if kind is Closure and fn.code.hint is None and self.depth < self.vm.fast_limit:
            linked = fn.code.fast
            if linked is None or linked.vm is not self.vm:
                linked = self.vm.linked(fn.code, hot=True)
            if linked is not None and (argc == linked.nparams
                                       or (linked.rest and argc > linked.nparams)):
                # translated code leaves `depth` as it found it, so nothing to restore
                return functools.partial(linked.fn, self, fn, self.depth)
        elif (kind is Builtin and not fn.needs_vm and self.deadline is None
              and fn.min_args <= argc and (fn.max_args is None or argc <= fn.max_args)):
            return fn.fn  # no deadline to count steps for: the builtin itself

        def call(*args: Any) -> Any:
            return self.call(fn, list(args))

        return call

    def call_direct(self, fn: Any, args: list[Any]) -> Any:
        """Apply a callable RTFS value here, without asking the router."""
        kind = type(fn)
        if kind is Closure:
            return self._run_closure(fn, args)
        if kind is Builtin:
            check_builtin_arity(fn, len(args))
            return fn.fn(self, *args) if fn.needs_vm else fn.fn(*args)
        return apply_data(fn, args)

    def _run_closure(self, fn: Closure, args: list[Any]) -> Any:
        depth = self.depth
        try:
            if depth < self.vm.fast_limit:
                linked = fn.code.fast
                if linked is None or linked.vm is not self.vm:
                    linked = self.vm.linked(fn.code)
                if linked is not None:
                    argc = len(args)
                    if argc != linked.nparams and not (linked.rest and argc > linked.nparams):
                        raise arity_error(fn.code, argc)
                    return linked.fn(self, fn, depth, *args)
            return self._loop(fn, args)
        finally:
            self.depth = depth

    def _route(self, name: str, callee: Any, args: list[Any], meta: Map, code: Code,
               pc: int, kind: CallKind = CallKind.FUNCTION) -> Any:
        line, col = code.position(pc)
        self.check_deadline()
        if kind is CallKind.CAPABILITY:
            def run_local() -> Any:
                raise unknown_capability(name)
        elif callee is _MISSING:
            def run_local() -> Any:
                raise UnboundSymbolError(f"unbound symbol: {name}", line, col)
            callee = None
        else:
            def run_local() -> Any:
                return self.call_direct(callee, args)
        hint = callee.code.hint if type(callee) is Closure else None
        call = RoutedCall(name, kind, callee, hint, meta, tuple(args), run_local, line, col,
                          own_names(callee), self.deadline)
        depth = self.depth
        router = self.vm.router
        version = router.version
        try:
            return router.route(call)
        except RtfsError:
            raise
        except Exception as err:
            raise HostError(f"{name}: {type(err).__name__}: {err}", line, col) from err
        finally:
            self.depth = depth
            if router.version != version:  # what the router claims may have changed
                self.vm.relink_all()

    def parallel(self, thunks: list[Any]) -> tuple[Any, ...]:
        """Run `parallel` branches; on threads when any of them may leave the VM."""
        if len(thunks) < 2 or not any(self.vm.leaves_vm(t.code) for t in thunks):
            return tuple(self.call_direct(t, []) for t in thunks)
        results: list[Any] = [None] * len(thunks)
        errors: list[BaseException | None] = [None] * len(thunks)

        def branch(i: int) -> None:
            execution = Execution(self.vm, self.depth, self.deadline)
            outer = deadlines.swap(execution)
            try:
                results[i] = execution.call_direct(thunks[i], [])
            except BaseException as err:  # re-raised below, in binding order
                errors[i] = err
            finally:
                deadlines.swap(outer)

        threads = [threading.Thread(target=branch, args=(i,), daemon=True)
                   for i in range(1, len(thunks))]
        for thread in threads:
            thread.start()
        branch(0)
        for thread in threads:
            thread.join()
        for err in errors:
            if err is not None:
                raise err
        return tuple(results)

    # -- the interpreter loop --------------------------------------------------------------
    def _loop(self, closure: Closure, args: list[Any]) -> Any:  # the dispatch, written out
        vm = self.vm
        globals_ = vm.globals
        router = vm.router
        max_depth, fast_limit = vm.max_depth, vm.fast_limit
        depth = self.depth
        frames: list[tuple[Any, ...]] = []
        code = closure.code
        locals_ = bind_args(code, list(args), None, None)
        if depth >= max_depth:
            raise too_deep(max_depth)
        self.tick()
        depth += 1
        ops, opargs, consts, cells = code.ops, code.args, code.consts, closure.cells
        sites, site_cache = code.sites, code.site_cache
        stack: list[Any] = []
        blocks: list[tuple[int, int]] = []
        pc = 0
        while True:
            try:
                while True:
                    op = ops[pc]
                    arg = opargs[pc]
                    pc += 1
                    if op == LOAD_LOCAL:
                        stack.append(locals_[arg])
                    elif op == LOAD_CONST:
                        stack.append(consts[arg])
                    elif op == CALL_GLOBAL:
                        site = sites[arg]
                        argc = site[0]
                        if argc:
                            call_args = stack[-argc:]
                            del stack[-argc:]
                        else:
                            call_args = []
                        callee = globals_.get(site[1], _MISSING)
                        entry = site_cache[arg]
                        if (entry is None or entry[0] is not router
                                or entry[1] != router.version or callee is _MISSING):
                            # (an unbound name is asked every time: it may be published in
                            # L4 or defined later, and asking costs nothing on a hot path)
                            entry = site_cache[arg] = (
                                router, router.version, claim(router, site))
                        kind = type(callee)
                        if entry[2] or (kind is Closure and callee.code.hint is not None):
                            if entry[2] == ONCE:  # decided LocalPure: later calls run here
                                site_cache[arg] = (entry[0], entry[1], NOT_CLAIMED)
                            self.depth = depth
                            stack.append(self._route(site.name, callee, call_args, site.meta,
                                                     code, pc - 1))
                        elif kind is Builtin:
                            if argc < callee.min_args or (
                                callee.max_args is not None and argc > callee.max_args
                            ):
                                check_builtin_arity(callee, argc)
                            if callee.needs_vm:
                                self.depth = depth
                                stack.append(callee.fn(self, *call_args))
                            else:
                                stack.append(callee.fn(*call_args))
                        elif kind is Closure:
                            ncode = callee.code
                            if depth < fast_limit:
                                linked = ncode.fast
                                if linked is None or linked.vm is not vm:
                                    linked = vm.linked(ncode)
                                if linked is not None:
                                    if argc != linked.nparams and not (
                                            linked.rest and argc > linked.nparams):
                                        raise arity_error(ncode, argc)
                                    stack.append(linked.fn(self, callee, depth, *call_args))
                                    continue
                            # push a frame; written out here and in CALL (not a helper) because
                            # this is the hottest path of the loop
                            new_locals = bind_args(ncode, call_args, code, pc - 1)
                            if depth >= max_depth:
                                raise too_deep(max_depth)
                            ticks = self.ticks - 1
                            self.ticks = ticks
                            if ticks < 0:
                                self.check_deadline()
                            depth += 1
                            frames.append((code, pc, stack, locals_, cells, blocks, closure))
                            code, closure, locals_ = ncode, callee, new_locals
                            ops, opargs, consts = code.ops, code.args, code.consts
                            cells = callee.cells
                            sites, site_cache = code.sites, code.site_cache
                            stack, blocks, pc = [], [], 0
                        elif callee is _MISSING:
                            raise UnboundSymbolError(f"unbound symbol: {site.name}")
                        else:
                            stack.append(apply_data(callee, call_args))
                    elif op == JUMP_IF_FALSE:
                        value = stack.pop()
                        if value is None or value is False:
                            pc = arg
                    elif op == RETURN:
                        value = stack.pop()
                        if stack or blocks:
                            raise InternalError(f"unbalanced frame at return from {code.qualname}")
                        depth -= 1
                        if not frames:
                            return value
                        code, pc, stack, locals_, cells, blocks, closure = frames.pop()
                        ops, opargs, consts = code.ops, code.args, code.consts
                        sites, site_cache = code.sites, code.site_cache
                        stack.append(value)
                    elif op == LOAD_DEREF:
                        value = locals_[arg].value
                        if value is UNSET:
                            raise UnboundSymbolError("variable used before its binding ran")
                        stack.append(value)
                    elif op == LOAD_FREE:
                        value = cells[arg].value
                        if value is UNSET:
                            raise UnboundSymbolError(
                                f"{code.freevars[arg]} used before its binding ran")
                        stack.append(value)
                    elif op == STORE_LOCAL:
                        locals_[arg] = stack.pop()
                    elif op == JUMP:
                        pc = arg
                    elif op == CALL:
                        site = sites[arg]
                        argc = site.argc
                        call_args = stack[len(stack) - argc:]
                        del stack[len(stack) - argc:]
                        callee = stack.pop()
                        if type(callee) is Closure:
                            ncode = callee.code
                            if ncode.hint is not None:
                                self.depth = depth
                                stack.append(self._route(site.name or callee.name, callee,
                                                         call_args, site.meta, code, pc - 1))
                                continue
                            if depth < fast_limit:
                                linked = ncode.fast
                                if linked is None or linked.vm is not vm:
                                    linked = vm.linked(ncode)
                                if linked is not None:
                                    if argc != linked.nparams and not (
                                            linked.rest and argc > linked.nparams):
                                        raise arity_error(ncode, argc)
                                    stack.append(linked.fn(self, callee, depth, *call_args))
                                    continue
                            new_locals = bind_args(ncode, call_args, code, pc - 1)
                            if depth >= max_depth:
                                raise too_deep(max_depth)
                            ticks = self.ticks - 1
                            self.ticks = ticks
                            if ticks < 0:
                                self.check_deadline()
                            depth += 1
                            frames.append((code, pc, stack, locals_, cells, blocks, closure))
                            code, closure, locals_ = ncode, callee, new_locals
                            ops, opargs, consts = code.ops, code.args, code.consts
                            cells = callee.cells
                            sites, site_cache = code.sites, code.site_cache
                            stack, blocks, pc = [], [], 0
                        else:
                            self.depth = depth
                            stack.append(self.call_direct(callee, call_args))
                    elif op == LOAD_GLOBAL:
                        value = globals_.get(code.names[arg], _MISSING)
                        if value is _MISSING:
                            raise UnboundSymbolError(f"unbound symbol: {code.names[arg]}")
                        stack.append(value)
                    elif op == POP:
                        stack.pop()
                    elif op == MAKE_CLOSURE:
                        child = consts[arg]
                        nfree = len(child.freevars)
                        if nfree:
                            captured = tuple(stack[-nfree:])
                            del stack[-nfree:]
                        else:
                            captured = ()
                        stack.append(Closure(child, captured, child.name))
                    elif op == STORE_DEREF:
                        locals_[arg].value = stack.pop()
                    elif op == MAKE_CELL:
                        locals_[arg] = Cell(UNSET)
                    elif op == CELLIFY:
                        locals_[arg] = Cell(locals_[arg])
                    elif op == LOAD_CELLREF:
                        stack.append(locals_[arg])
                    elif op == LOAD_FREEREF:
                        stack.append(cells[arg])
                    elif op == DUP:
                        stack.append(stack[-1])
                    elif op == DEF_GLOBAL:
                        vm.define(code.names[arg], stack[-1])
                    elif op == LOAD_SELF:
                        stack.append(closure)
                    elif op == JUMP_IF_FALSE_OR_POP:
                        value = stack[-1]
                        if value is None or value is False:
                            pc = arg
                        else:
                            stack.pop()
                    elif op == JUMP_IF_TRUE_OR_POP:
                        value = stack[-1]
                        if value is None or value is False:
                            stack.pop()
                        else:
                            pc = arg
                    else:
                        self.depth = depth
                        _SLOW_OPS[op](self, code, arg, stack, blocks, pc)
            except Exception as exc:
                err = fault(exc, code, pc - 1)
                while not blocks:  # unwind to the nearest frame with a try block
                    depth -= 1
                    if not frames:
                        if err is exc:
                            raise
                        raise err from exc
                    code, pc, stack, locals_, cells, blocks, closure = frames.pop()
                    ops, opargs, consts = code.ops, code.args, code.consts
                    sites, site_cache = code.sites, code.site_cache
                    err = err.at(*code.position(pc - 1))
                handler, height = blocks.pop()
                del stack[height:]
                stack.append(ErrorValue.of(err))
                pc = handler


# -- the slower, rarer ops --------------------------------------------------------------------
def _op_call_cap(ex: Execution, code: Code, arg: int, stack: list, blocks: list, pc: int) -> None:
    site = code.sites[arg]
    args = stack[len(stack) - site.argc:]
    del stack[len(stack) - site.argc:]
    stack.append(ex._route(site.name or "", None, args, site.meta, code, pc - 1,
                           CallKind.CAPABILITY))


def _op_build(kind: Callable[[list], Any]) -> Callable[..., None]:
    def build(ex: Execution, code: Code, arg: int, stack: list, blocks: list, pc: int) -> None:
        count = 2 * arg if kind is _make_map else arg
        items = stack[len(stack) - count:]
        del stack[len(stack) - count:]
        stack.append(kind(items))
    return build


def _make_map(items: list) -> Map:
    return Map(zip(items[0::2], items[1::2]))


def _op_setup_try(ex: Execution, code: Code, arg: int, stack: list, blocks: list, pc: int) -> None:
    blocks.append((arg, len(stack)))


def _op_pop_try(ex: Execution, code: Code, arg: int, stack: list, blocks: list, pc: int) -> None:
    blocks.pop()


def _op_reraise(ex: Execution, code: Code, arg: int, stack: list, blocks: list, pc: int) -> None:
    raise stack.pop().error


def _op_err_matches(ex: Execution, code: Code, arg: int, stack: list, blocks: list,
                    pc: int) -> None:
    stack.append(error_matches(stack.pop().error, code.consts[arg]))


def _op_nth(ex: Execution, code: Code, arg: int, stack: list, blocks: list, pc: int) -> None:
    stack.append(nth_or_nil(stack[-1], arg))


def _op_rest(ex: Execution, code: Code, arg: int, stack: list, blocks: list, pc: int) -> None:
    stack.append(rest_from(stack[-1], arg))


def _op_get_key(ex: Execution, code: Code, arg: int, stack: list, blocks: list, pc: int) -> None:
    stack.append(get_or(stack[-1], code.consts[arg], None))


def _op_get_key_or(ex: Execution, code: Code, arg: int, stack: list, blocks: list,
                   pc: int) -> None:
    default = stack.pop()
    stack.append(get_or(stack[-1], code.consts[arg], default))


def _op_test_seq(exact: bool) -> Callable[..., None]:
    def test(ex: Execution, code: Code, arg: int, stack: list, blocks: list, pc: int) -> None:
        value = stack[-1]
        ok = type(value) is tuple or type(value) is RList
        stack.append(ok and (len(value) == arg if exact else len(value) >= arg))
    return test


def _op_test_map(ex: Execution, code: Code, arg: int, stack: list, blocks: list, pc: int) -> None:
    stack.append(isinstance(stack[-1], dict))


def _op_has_key(ex: Execution, code: Code, arg: int, stack: list, blocks: list, pc: int) -> None:
    stack.append(code.consts[arg] in stack[-1])


def _op_equal(ex: Execution, code: Code, arg: int, stack: list, blocks: list, pc: int) -> None:
    right = stack.pop()
    stack.append(rtfs_equal(stack.pop(), right))


def _op_match_fail(ex: Execution, code: Code, arg: int, stack: list, blocks: list,
                   pc: int) -> None:
    raise MatchError(f"no match clause accepts {preview(stack.pop(), 200)}")


def _op_parallel(ex: Execution, code: Code, arg: int, stack: list, blocks: list, pc: int) -> None:
    thunks = stack[len(stack) - arg:]
    del stack[len(stack) - arg:]
    stack.append(ex.parallel(thunks))


def _op_throw(ex: Execution, code: Code, arg: int, stack: list, blocks: list, pc: int) -> None:
    value = stack.pop()
    if isinstance(value, ErrorValue):
        raise value.error
    raise UserError(f"thrown: {preview(value, 200)}", None, None, value)


_SLOW_OPS: list[Callable[..., None] | None] = [None] * (max(Op) + 1)
for _op, _fn in {
    Op.CALL_CAP: _op_call_cap,
    Op.BUILD_VECTOR: _op_build(tuple),
    Op.BUILD_MAP: _op_build(_make_map),
    Op.BUILD_SET: _op_build(frozenset),
    Op.SETUP_TRY: _op_setup_try,
    Op.POP_TRY: _op_pop_try,
    Op.RERAISE: _op_reraise,
    Op.ERR_MATCHES: _op_err_matches,
    Op.NTH_OR_NIL: _op_nth,
    Op.REST_FROM: _op_rest,
    Op.GET_KEY: _op_get_key,
    Op.GET_KEY_OR: _op_get_key_or,
    Op.TEST_SEQ: _op_test_seq(True),
    Op.TEST_SEQ_MIN: _op_test_seq(False),
    Op.TEST_MAP: _op_test_map,
    Op.HAS_KEY: _op_has_key,
    Op.EQUAL: _op_equal,
    Op.MATCH_FAIL: _op_match_fail,
    Op.PARALLEL: _op_parallel,
    Op.THROW: _op_throw,
}.items():
    _SLOW_OPS[_op] = _fn
