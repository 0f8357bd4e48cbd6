"""The virtual machine: runs verified `Code`.

One `VM` holds the global environment, the router and the output stream. Every call into it
(`run`, `call`) gets its own `Execution` (rtfs.execution), so calls from several threads at
once, and calls re-entering from a builtin or a router, never share a stack. Inside one
execution the bytecode loop does not recurse in Python for RTFS calls: frames live on an
explicit list, so depth is bounded by `max_depth`, not by Python's recursion limit.

The fast path (rtfs.fast): with `fast=True` (the default) a function is translated into a
Python function on its second call (`translate_after`) and runs as Python from then on; the
loop stays for code the translator does not cover, for code run once (most top levels), and
for calls nested deeper than `fast_limit` (translated code recurses in Python, the loop
does not). Both keep the same semantics: routing, errors and their positions, `max_depth`,
and the deadline.

The ops at the end of this module are the loop's rarer ones (`_SLOW_OPS`); translated code
runs any op it has no translation of through the same handlers.

Deadlines: `run` and `call` take `deadline=` (a `rtfs.deadline.Deadline`, or an absolute time
in seconds on the VM's `clock`). Nested calls, `parallel` branches and calls re-entering the
VM on the same thread (a router calling `vm.call`) inherit it; a run past it stops with
`DeadlineExceeded` at the position of the call it was making.
"""

from __future__ import annotations

import sys
import time
import weakref
from collections.abc import Callable, Sequence
from typing import IO, Any, cast

from rtfs import deadline as deadlines
from rtfs.bytecode import Code, Op
from rtfs.control import Recur, build_quasi, run_dotimes, run_for, run_loop
from rtfs.deadline import Deadline
from rtfs.env import Globals
from rtfs.errors import MatchError, RtfsError, UserError
from rtfs.execution import Execution
from rtfs.fast import link
from rtfs.faults import as_rtfs_error
from rtfs.ops import ErrorValue, error_matches, get_or, map_rest, nth_or_nil, rest_from
from rtfs.printer import preview
from rtfs.router import CallKind, CallRouter, LocalRouter
from rtfs.typecheck import check_annotation, test_annotation
from rtfs.values import Builtin, Closure, Map, RList, make_set, rtfs_equal

DEFAULT_MAX_DEPTH = 10_000


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
        # translated functions linked to this VM when another VM linked their code first, by
        # id(code) (a live entry keeps its code alive, so the id is that code's)
        self.links: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        self.linked_functions: weakref.WeakSet[Any] = weakref.WeakSet()
        self.globals.changed = self.relink_all
        self.slow_ops = _SLOW_OPS

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
            if op in (Op.CALL, Op.CALL_CAP):
                return True
            if op == Op.CALL_GLOBAL:
                name = code.sites[arg].name or ""
                callee = self.globals.get(name)
                if not (isinstance(callee, Builtin) and callee.pure) or self.router.claims(name):
                    return True
        return any(self._scan_leaves_vm(child) for child in code.children())


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
