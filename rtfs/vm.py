"""The virtual machine: runs verified `Code`.

One `VM` holds the global environment, the router and the output stream. Every call into it
(`run`, `call`) gets its own `Execution`, so calls from several threads at once, and calls
re-entering from a builtin or a router, never share a stack. Inside one execution RTFS calls
do not recurse in Python: frames live on an explicit list, so depth is bounded by
`max_depth`, not by Python's recursion limit.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import IO, Any

from rtfs.bytecode import Code, Op
from rtfs.control import Recur, build_quasi, run_dotimes, run_for, run_loop
from rtfs.errors import (
    ArityError,
    HostError,
    InternalError,
    MatchError,
    RtfsArithmeticError,
    RtfsError,
    RtfsRecursionError,
    RtfsTypeError,
    UnboundSymbolError,
    UserError,
)
from rtfs.ops import ErrorValue, error_matches, get_or, map_rest, nth_or_nil, rest_from
from rtfs.printer import to_readable
from rtfs.router import (
    CallKind,
    CallRouter,
    Claim,
    LocalRouter,
    RoutedCall,
    unknown_capability,
)
from rtfs.typecheck import check_annotation, test_annotation
from rtfs.values import (
    EMPTY_MAP,
    UNSET,
    Builtin,
    Cell,
    Closure,
    Keyword,
    Map,
    RList,
    make_set,
    own_names,
    rtfs_equal,
    type_name,
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

NOT_CLAIMED, ONCE = int(Claim.NO), int(Claim.ONCE)

_MISSING = object()


class VM:
    """Runs RTFS code against one global environment.

    Args:
        router: decides where routed calls run (default: everything local).
        out: where `println` writes (default: sys.stdout at the time of the call).
        max_depth: the deepest nesting of RTFS calls before `RtfsRecursionError`.
        builtins: the functions every program sees (default: the standard library).
    """

    def __init__(self, *, router: CallRouter | None = None, out: IO[str] | None = None,
                 max_depth: int = DEFAULT_MAX_DEPTH,
                 builtins: dict[str, Any] | None = None) -> None:
        if builtins is None:
            from rtfs.stdlib import BUILTINS as builtins
        self.builtins = builtins
        self.globals: dict[str, Any] = dict(builtins)
        self.router: CallRouter = router if router is not None else LocalRouter()
        self.out = out
        self.max_depth = max_depth
        self._leaves_vm: weakref.WeakKeyDictionary[Code, tuple[Any, bool]] = (
            weakref.WeakKeyDictionary())

    def define(self, name: str, value: Any) -> None:
        """Bind the global `name`; a function value remembers it as one of its names (policy
        such as sensitivity follows the function, whatever name a call site uses)."""
        if type(value) is Closure and name not in value.aliases:
            value.aliases = value.aliases | {name}
        self.globals[name] = value

    def write(self, text: str) -> None:
        (self.out or sys.stdout).write(text)

    def run(self, code: Code) -> Any:
        """Run the top level of a compiled program and return its value."""
        return Execution(self).call_direct(Closure(code, ()), [])

    def call(self, fn: Any, args: Sequence[Any], *, route: bool = True) -> Any:
        """Call an RTFS function value. Re-entrant and safe from several threads at once.

        With `route` (the default) a hinted function goes through the router, as it would
        from RTFS code; without it the call runs here.
        """
        execution = Execution(self)
        return execution.call(fn, list(args)) if route else execution.call_direct(fn, list(args))

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
                name = code.sites[arg].name
                callee = self.globals.get(name)
                if not (isinstance(callee, Builtin) and callee.pure) or self.router.claims(name):
                    return True
        return any(self._scan_leaves_vm(child) for child in code.children())


class Execution:
    """The state of one call into the VM on one thread."""

    __slots__ = ("vm", "depth")

    def __init__(self, vm: VM, depth: int = 0) -> None:
        self.vm = vm
        self.depth = depth

    # -- calling values ------------------------------------------------------------------------
    def call(self, fn: Any, args: list[Any]) -> Any:
        """Apply any callable RTFS value, routing hinted functions."""
        if type(fn) is Closure and fn.code.hint is not None:
            return self._route(fn.name or fn.code.name, fn, args, EMPTY_MAP, fn.code, -1)
        return self.call_direct(fn, args)

    def call_direct(self, fn: Any, args: list[Any]) -> Any:
        """Apply a callable RTFS value here, without asking the router."""
        kind = type(fn)
        if kind is Closure:
            return self._loop(fn, args)
        if kind is Builtin:
            _check_builtin_arity(fn, len(args))
            return fn.fn(self, *args) if fn.needs_vm else fn.fn(*args)
        return _apply_data(fn, args)

    def _route(self, name: str, callee: Any, args: list[Any], meta: Map, code: Code,
               pc: int, kind: CallKind = CallKind.FUNCTION) -> Any:
        line, col = code.position(pc)
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
                          own_names(callee))
        try:
            return self.vm.router.route(call)
        except RtfsError:
            raise
        except Exception as err:
            raise HostError(f"{name}: {type(err).__name__}: {err}", line, col) from err

    def parallel(self, thunks: list[Any]) -> tuple[Any, ...]:
        """Run `parallel` branches; on threads when any of them may leave the VM."""
        if len(thunks) < 2 or not any(self.vm.leaves_vm(t.code) for t in thunks):
            return tuple(self.call_direct(t, []) for t in thunks)
        results: list[Any] = [None] * len(thunks)
        errors: list[BaseException | None] = [None] * len(thunks)

        def branch(i: int) -> None:
            try:
                results[i] = Execution(self.vm, self.depth).call_direct(thunks[i], [])
            except BaseException as err:  # re-raised below, in binding order
                errors[i] = err

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
    def _loop(self, closure: Closure, args: list[Any]) -> Any:  # noqa: C901 - the dispatch
        vm = self.vm
        globals_ = vm.globals
        router = vm.router
        frames: list[tuple[Any, ...]] = []
        code = closure.code
        locals_ = _bind_args(code, list(args), None, None)
        ops, opargs, consts, cells = code.ops, code.args, code.consts, closure.cells
        sites, site_cache = code.sites, code.site_cache
        stack: list[Any] = []
        blocks: list[tuple[int, int]] = []
        pc = 0
        self._enter()
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
                                router, router.version, _claim(router, site))
                        kind = type(callee)
                        if entry[2] or (kind is Closure and callee.code.hint is not None):
                            if entry[2] == ONCE:  # decided LocalPure: later calls run here
                                site_cache[arg] = (entry[0], entry[1], NOT_CLAIMED)
                            stack.append(self._route(site.name, callee, call_args, site.meta,
                                                     code, pc - 1))
                        elif kind is Builtin:
                            if argc < callee.min_args or (
                                callee.max_args is not None and argc > callee.max_args
                            ):
                                _check_builtin_arity(callee, argc)
                            if callee.needs_vm:
                                stack.append(callee.fn(self, *call_args))
                            else:
                                stack.append(callee.fn(*call_args))
                        elif kind is Closure:
                            # push a frame; written out here and in CALL (not a helper) because
                            # this is the hottest path of the loop
                            ncode = callee.code
                            new_locals = _bind_args(ncode, call_args, code, pc - 1)
                            self._enter()
                            frames.append((code, pc, stack, locals_, cells, blocks, closure))
                            code, closure, locals_ = ncode, callee, new_locals
                            ops, opargs, consts = code.ops, code.args, code.consts
                            cells = callee.cells
                            sites, site_cache = code.sites, code.site_cache
                            stack, blocks, pc = [], [], 0
                        elif callee is _MISSING:
                            raise UnboundSymbolError(f"unbound symbol: {site.name}")
                        else:
                            stack.append(_apply_data(callee, call_args))
                    elif op == JUMP_IF_FALSE:
                        value = stack.pop()
                        if value is None or value is False:
                            pc = arg
                    elif op == RETURN:
                        value = stack.pop()
                        if stack or blocks:
                            raise InternalError(f"unbalanced frame at return from {code.qualname}")
                        self.depth -= 1
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
                            if callee.code.hint is not None:
                                stack.append(self._route(site.name or callee.name, callee,
                                                         call_args, site.meta, code, pc - 1))
                                continue
                            ncode = callee.code
                            new_locals = _bind_args(ncode, call_args, code, pc - 1)
                            self._enter()
                            frames.append((code, pc, stack, locals_, cells, blocks, closure))
                            code, closure, locals_ = ncode, callee, new_locals
                            ops, opargs, consts = code.ops, code.args, code.consts
                            cells = callee.cells
                            sites, site_cache = code.sites, code.site_cache
                            stack, blocks, pc = [], [], 0
                        else:
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
                        _SLOW_OPS[op](self, code, arg, stack, blocks, pc)
            except Exception as exc:
                err = _as_rtfs_error(exc, code, pc - 1)
                while not blocks:  # unwind to the nearest frame with a try block
                    self.depth -= 1
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

    def _enter(self) -> None:
        if self.depth >= self.vm.max_depth:
            raise RtfsRecursionError(
                f"calls nested deeper than {self.vm.max_depth} (runaway recursion?)")
        self.depth += 1


# -- the slower, rarer ops --------------------------------------------------------------------
def _op_call_cap(ex: Execution, code: Code, arg: int, stack: list, blocks: list, pc: int) -> None:
    site = code.sites[arg]
    args = stack[len(stack) - site.argc:]
    del stack[len(stack) - site.argc:]
    stack.append(ex._route(site.name, None, args, site.meta, code, pc - 1, CallKind.CAPABILITY))


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
    raise MatchError(f"no match clause accepts {to_readable(stack.pop())[:200]}")


def _op_parallel(ex: Execution, code: Code, arg: int, stack: list, blocks: list, pc: int) -> None:
    thunks = stack[len(stack) - arg:]
    del stack[len(stack) - arg:]
    stack.append(ex.parallel(thunks))


def _op_throw(ex: Execution, code: Code, arg: int, stack: list, blocks: list, pc: int) -> None:
    value = stack.pop()
    if isinstance(value, ErrorValue):
        raise value.error
    raise UserError(f"thrown: {to_readable(value)[:200]}", None, None, value)


def _op_check_type(ex: Execution, code: Code, arg: int, stack: list, blocks: list,
                   pc: int) -> None:
    check_annotation(code, arg, stack[-1], ex.vm.globals)


def _op_map_rest(ex: Execution, code: Code, arg: int, stack: list, blocks: list,
                 pc: int) -> None:
    stack.append(map_rest(stack[-1], code.consts[arg]))


def _op_is_type(ex: Execution, code: Code, arg: int, stack: list, blocks: list,
                pc: int) -> None:
    stack.append(test_annotation(code, arg, stack[-1], ex.vm.globals))


def _op_loop(ex: Execution, code: Code, arg: int, stack: list, blocks: list, pc: int) -> None:
    args = stack[len(stack) - arg:]
    del stack[len(stack) - arg:]
    stack.append(run_loop(ex, stack.pop(), args))


def _op_recur(ex: Execution, code: Code, arg: int, stack: list, blocks: list, pc: int) -> None:
    args = stack[len(stack) - arg:]
    del stack[len(stack) - arg:]
    stack.append(Recur(args))


def _op_for(ex: Execution, code: Code, arg: int, stack: list, blocks: list, pc: int) -> None:
    coll = stack.pop()
    stack.append(run_for(ex, stack.pop(), coll))


def _op_dotimes(ex: Execution, code: Code, arg: int, stack: list, blocks: list,
                pc: int) -> None:
    count = stack.pop()
    run_dotimes(ex, stack.pop(), count)
    stack.append(None)


def _op_build_qq(ex: Execution, code: Code, arg: int, stack: list, blocks: list,
                 pc: int) -> None:
    kind, spliced = code.consts[arg]
    parts = stack[len(stack) - len(spliced):]
    del stack[len(stack) - len(spliced):]
    stack.append(build_quasi(kind, spliced, parts))


_SLOW_OPS: list[Callable[..., None] | None] = [None] * (max(Op) + 1)
for _op, _fn in {
    Op.CALL_CAP: _op_call_cap,
    Op.BUILD_VECTOR: _op_build(tuple),
    Op.BUILD_MAP: _op_build(_make_map),
    Op.BUILD_SET: _op_build(make_set),
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
    Op.CHECK_TYPE: _op_check_type,
    Op.MAP_REST: _op_map_rest,
    Op.IS_TYPE: _op_is_type,
    Op.LOOP: _op_loop,
    Op.RECUR: _op_recur,
    Op.FOR: _op_for,
    Op.DOTIMES: _op_dotimes,
    Op.BUILD_QQ: _op_build_qq,
}.items():
    _SLOW_OPS[_op] = _fn


# -- helpers ----------------------------------------------------------------------------------
def _bind_args(code: Code, args: list[Any], caller: Code | None, pc: int | None) -> list[Any]:
    """The new frame's locals: parameters first, `& rest` after them, the rest unset."""
    nparams = len(code.params)
    argc = len(args)
    if code.rest is None:
        if argc != nparams:
            raise _arity_error(code, argc, caller, pc)
        if code.nlocals > argc:
            args.extend([None] * (code.nlocals - argc))
        return args
    if argc < nparams:
        raise _arity_error(code, argc, caller, pc)
    rest = tuple(args[nparams:]) or None
    del args[nparams:]
    args.append(rest)
    args.extend([None] * (code.nlocals - nparams - 1))
    return args


def _arity_error(code: Code, argc: int, caller: Code | None, pc: int | None) -> ArityError:
    wanted = f"{len(code.params)}{'+' if code.rest else ''}"
    line, col = caller.position(pc) if caller is not None and pc is not None else (None, None)
    return ArityError(f"{code.name} takes {wanted} argument(s), got {argc}", line, col)


def _claim(router: CallRouter, site: Any) -> int:
    """How calls at `site` go through `router`; a call written with `^{...}` metadata is
    always routed, since metadata is there to inform the decision."""
    claim = int(router.claims(site.name))
    return int(Claim.ALWAYS) if site.meta and claim == NOT_CLAIMED else claim


def _check_builtin_arity(fn: Builtin, argc: int) -> None:
    if argc < fn.min_args or (fn.max_args is not None and argc > fn.max_args):
        if fn.max_args is None:
            wanted = f"at least {fn.min_args}"
        elif fn.min_args == fn.max_args:
            wanted = str(fn.min_args)
        else:
            wanted = f"{fn.min_args} to {fn.max_args}"
        raise ArityError(f"{fn.name} takes {wanted} argument(s), got {argc}")


def _apply_data(fn: Any, args: list[Any]) -> Any:
    """Keywords, maps, vectors and sets are functions of their keys."""
    if type(fn) is Keyword or isinstance(fn, dict):
        if not 1 <= len(args) <= 2:
            raise ArityError(f"{to_readable(fn)[:40]} as a function takes 1 or 2 arguments")
        default = args[1] if len(args) == 2 else None
        if type(fn) is Keyword:
            return get_or(args[0], fn, default)
        return get_or(fn, args[0], default)
    if type(fn) in (tuple, frozenset):
        if len(args) != 1:
            raise ArityError(f"a {type_name(fn)} as a function takes 1 argument")
        return get_or(fn, args[0], None)
    raise RtfsTypeError(f"{type_name(fn)} {to_readable(fn)[:40]} is not a function")


def _as_rtfs_error(exc: Exception, code: Code, pc: int) -> RtfsError:
    """Any exception raised while running `code` at `pc`, as an RTFS error with a position."""
    line, col = code.position(pc)
    if isinstance(exc, RtfsError):
        return exc.at(line, col)
    if isinstance(exc, ZeroDivisionError):
        return RtfsArithmeticError("division by zero", line, col)
    if isinstance(exc, RecursionError):
        return RtfsRecursionError("calls nested too deeply for the host stack", line, col)
    if isinstance(exc, (TypeError, ValueError, KeyError, IndexError, AttributeError)):
        return RtfsTypeError(f"{type(exc).__name__}: {exc}", line, col)
    return HostError(f"{type(exc).__name__}: {exc}", line, col)

