"""One call into the VM on one thread: the dispatch loop, calls, routing, and the deadline.

The loop runs bytecode with an explicit list of frames, so RTFS calls do not recurse in
Python and depth is bounded by `max_depth`. Calls of functions the VM has translated
(rtfs.fast) go to their Python function while the depth is under `VM.fast_limit`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, Protocol

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
from rtfs.errors import (
    DeadlineExceeded,
    HostError,
    InternalError,
    RtfsError,
    UnboundSymbolError,
)
from rtfs.faults import fault
from rtfs.ops import ErrorValue
from rtfs.router import CallKind, CallRouter, RoutedCall, unknown_capability
from rtfs.values import EMPTY_MAP, UNSET, Builtin, Cell, Closure, Map, own_names


class VM(Protocol):
    """What an execution uses of its VM (`rtfs.vm.VM`; a protocol, so that this module, which
    the VM imports, does not import it back)."""

    @property
    def globals(self) -> dict[str, Any]: ...

    @property
    def router(self) -> CallRouter: ...

    @property
    def max_depth(self) -> int: ...

    @property
    def fast_limit(self) -> int: ...

    @property
    def slow_ops(self) -> Any: ...

    def define(self, name: str, value: Any) -> None: ...

    def linked(self, code: Code, *, hot: bool = False) -> Any: ...

    def relink_all(self) -> None: ...

    def leaves_vm(self, code: Code) -> bool: ...

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
        elif (kind is Builtin and not fn.needs_vm
              and fn.min_args <= argc and (fn.max_args is None or argc <= fn.max_args)):
            if self.deadline is None:
                return fn.fn  # no deadline to count steps for: the builtin itself
            return self._ticking(fn.fn)

        def call(*args: Any) -> Any:
            return self.call(fn, list(args))

        return call

    def _ticking(self, builtin: Callable[..., Any]) -> Callable[..., Any]:
        """`builtin` counting one step per call, as `call` does (its arity already checked):
        a run with a deadline does not pay `call`'s dispatch on every item."""

        def ticking(*args: Any) -> Any:
            ticks = self.ticks - 1
            self.ticks = ticks
            if ticks < 0:
                self.check_deadline()
            return builtin(*args)

        return ticking

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
            except BaseException as err:  # noqa: BLE001 - re-raised below, in binding order
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
        max_depth, fast_limit, slow_ops = vm.max_depth, vm.fast_limit, vm.slow_ops
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
                                or entry[1] != router.version
                                or (callee is _MISSING and not entry[2])):
                            # (an unbound name nobody claimed is asked again: it may be
                            # published in L4 later; the call fails anyway, so it is no
                            # hot path)
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
                        slow_ops[op](self, code, arg, stack, blocks, pc)
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
