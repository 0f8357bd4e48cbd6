"""The fast path: verified bytecode runs as a Python function (rtfs.translate) linked to a VM.

Translation depends on the code's structure only and is done once per `Code` (the compiled
module is also shared by every code of the same structure). Linking binds it to one VM: its
globals, router, depth limit and the code's constants. A global call site is *resolved* on its
first call, exactly as the VM loop decides it (the callee bound now, the router's claim cached
per site, router and router version, a hint on the callee), into one of: an inline template,
a plain builtin call, a translated function called directly, or a helper that routes, runs a
`needs_vm` builtin, applies data, or raises. A resolution holds until the global environment
changes (the VM's `Globals` reports every change), the router's version changes (checked
when a run enters the VM and after every routed call, the two places where router code
runs), or a `Claim.ONCE` site has routed its first call. So routing, privacy and errors are the
VM's, at Python speed.

Depth: a translated function receives its caller's depth and recurses in Python while the
depth is under `VM.fast_limit`; deeper calls continue in the VM loop, which keeps its frames
on a list and enforces `max_depth` without growing the host stack.
"""

from __future__ import annotations

import functools
from typing import Any

from rtfs.bytecode import Code, Site
from rtfs.calls import (
    MISSING,
    NOT_CLAIMED,
    ONCE,
    apply_data,
    arity_error,
    builtin_accepts,
    check_builtin_arity,
    claim,
)
from rtfs.control import Recur
from rtfs.errors import UnboundSymbolError
from rtfs.faults import fault
from rtfs.ops import ErrorValue
from rtfs.stdlib import BUILTINS as STANDARD
from rtfs.translate import Translation, Untranslatable, compile_factory, translate
from rtfs.values import UNSET, Builtin, Cell, Closure


class _NotFast:
    """`Code.fast` for code the translator does not cover."""

    vm = None


NOT_FAST = _NotFast()


class _Calls:
    """`Code.fast` while the code has run fewer times than a VM translates after."""

    __slots__ = ("count",)
    vm = None

    def __init__(self) -> None:
        self.count = 0


def link(vm: Any, code: Code, slow_ops: list[Any], hot: bool = False) -> Linked | None:
    """`code` translated and linked to `vm`, or None when the VM loop must run it (code the
    translator does not cover, or code that has not yet run `vm.translate_after` times: most
    top levels run once, and translating costs more than running them)."""
    entry = code.fast
    if entry is NOT_FAST:
        return None
    if entry is None or type(entry) is _Calls:
        if entry is None:
            entry = code.fast = _Calls()
        if entry.count < vm.translate_after and not hot:
            entry.count += 1
            return None
        entry = None
    if entry is not None:
        if entry.vm is vm:
            return entry
        found: Linked | None = vm.links.get(id(code))
        if found is not None and found.code is code:
            return found
        translation, factory = entry.translation, entry.factory
    else:
        try:
            translation = translate(code, lambda op: 0 <= op < len(slow_ops)
                                    and slow_ops[op] is not None)
            factory = _factory(translation)
        except Untranslatable:
            code.fast = NOT_FAST
            return None
    linked = Linked(vm, code, translation, factory, slow_ops)
    if code.fast is None or type(code.fast) is _Calls:
        code.fast = linked
    else:
        vm.links[id(code)] = linked
    return linked


@functools.lru_cache(maxsize=4096)
def _compiled(translation: Translation) -> Any:
    return compile_factory(translation)


def _factory(translation: Translation) -> Any:
    return _compiled(translation)


class Linked:
    """One translated function linked to one VM.

    `fn(ex, closure, depth, *args)` runs it (the caller has checked the argument count
    against `nparams` and `rest`).
    """

    __slots__ = ("__weakref__", "cells", "code", "factory", "fn", "nparams", "rest", "sites",
                 "translation", "vm")

    def __init__(self, vm: Any, code: Code, translation: Translation, factory: Any,
                 slow_ops: list[Any]) -> None:
        self.vm, self.code = vm, code
        self.translation, self.factory = translation, factory
        self.nparams = len(code.params)
        self.rest = code.rest is not None
        refs: dict[int, SiteRef] = {}
        for site in translation.global_sites:
            refs.setdefault(site.index, SiteRef(self, site.index, site.pc, site.inline))
        self.sites = list(refs.values())
        calls = {index: CallSiteRef(code, index, pc) for index, pc in translation.call_sites}
        values = [self._value(name, refs, calls, slow_ops) for name in translation.params]
        self.fn = factory(*values)
        # while anything can call the function (a resolved call site, a caller), its Linked
        # must live, or nothing would reset its call sites when the environment changes
        self.fn.linked = self
        self.cells = dict(zip(self.fn.__code__.co_freevars, self.fn.__closure__ or ()))
        for ref in self.sites:
            ref.cell = self.cells[f"S{ref.index}"]
            ref.inline_cell = self.cells.get(f"I{ref.index}")
        self.relink()
        vm.linked_functions.add(self)

    def _value(self, name: str, refs: dict[int, SiteRef], calls: dict[int, CallSiteRef],
               slow_ops: list[Any]) -> Any:
        if name in RUNTIME:
            return RUNTIME[name]
        vm, code = self.vm, self.code
        fixed = {"CODE": code, "GGET": vm.globals.get, "DEFINE": vm.define, "LIM": 0,
                 "PCS": self.translation.line_pcs}
        if name in fixed:
            return fixed[name]
        kind, index = name[0], int(name[1:])
        if kind == "k":
            return code.consts[index]
        if kind == "n":
            return code.names[index]
        if kind == "v":
            return code.freevars[index]
        if kind == "S":
            return refs[index].unresolved
        if kind == "I":
            return False
        if kind == "X":
            return calls[index]
        if kind == "O":
            return slow_ops[index]
        raise AssertionError(f"unknown parameter {name}")

    def relink(self) -> None:
        """Forget every site's resolution (the environment or the router changed)."""
        for ref in self.sites:
            ref.forget()
        self.cells["LIM"].cell_contents = min(self.vm.max_depth, self.vm.fast_limit)


class SiteRef:
    """A global call site of a linked function, and the cell holding its resolution."""

    __slots__ = ("argc", "cell", "code", "index", "inline", "inline_cell", "linked", "meta",
                 "name", "pc", "site", "unresolved")

    def __init__(self, linked: Linked, index: int, pc: int, inline: str | None) -> None:
        self.linked, self.index, self.pc, self.inline = linked, index, pc, inline
        self.code = linked.code
        self.site: Site = self.code.sites[index]
        self.name: str = self.site.name or ""
        self.meta = self.site.meta
        self.argc = self.site.argc
        self.cell: Any = None
        self.inline_cell: Any = None
        self.unresolved = (False, resolve_call, self)

    def forget(self) -> None:
        if self.inline_cell is not None:
            self.inline_cell.cell_contents = False
        self.cell.cell_contents = self.unresolved

    def settle(self, resolution: tuple[bool, Any, Any], inline: bool) -> None:
        self.cell.cell_contents = resolution
        if self.inline_cell is not None:
            self.inline_cell.cell_contents = inline


class CallSiteRef:
    """A CALL site (callee computed at run time): what routing and errors need."""

    __slots__ = ("code", "index", "meta", "name", "pc")

    def __init__(self, code: Code, index: int, pc: int) -> None:
        site = code.sites[index]
        self.code, self.index, self.pc = code, index, pc
        self.name, self.meta = site.name, site.meta


# -- resolving a global call site ---------------------------------------------------------
def resolve(ref: SiteRef) -> tuple[Any, ...]:
    """How calls at `ref` run now: the VM loop's decision for a CALL_GLOBAL, made once."""
    vm = ref.linked.vm
    router = vm.router
    callee = vm.globals.get(ref.name, MISSING)
    cache = ref.code.site_cache
    entry = cache[ref.index]
    if (entry is None or entry[0] is not router or entry[1] != router.version
            or (callee is MISSING and not entry[2])):
        entry = cache[ref.index] = (router, router.version, claim(router, ref.site))
    how = entry[2]
    kind = type(callee)
    if callee is MISSING:
        return _res(unbound_call, ref)
    if how == ONCE:
        return _res(once_call, ref)
    if how or (kind is Closure and callee.code.hint is not None):
        return _res(routed_call, ref)
    if kind is Builtin:
        if not builtin_accepts(callee, ref.argc):
            return _res(builtin_arity_call, callee)
        if callee.needs_vm:
            return _res(vm_builtin_call, callee)
        return (True, callee.fn, None)
    if kind is Closure:
        target = vm.linked(callee.code)
        if target is None:
            return _res(loop_call, callee)
        if ref.argc != target.nparams and not (target.rest and ref.argc > target.nparams):
            return _res(closure_arity_call, callee)
        return _res(target.fn, callee)
    return _res(data_call, callee)


def _res(fn: Any, extra: Any) -> tuple[bool, Any, Any]:
    """A resolution the generated code unpacks: (plain, callable, extra); a plain callable
    takes the call's arguments only, any other takes (ex, extra, depth, *arguments)."""
    return (False, fn, extra)


def resolve_call(ex: Any, ref: SiteRef, d: int, *args: Any) -> Any:
    plain, fn, extra = resolution = resolve(ref)
    callee = ref.linked.vm.globals.get(ref.name)
    ref.settle(resolution, plain and ref.inline is not None
               and STANDARD.get(ref.inline) is callee)
    return fn(*args) if plain else fn(ex, extra, d, *args)


def unbound_call(ex: Any, ref: SiteRef, d: int, *args: Any) -> Any:
    """A global with no binding, as the VM loop calls it: a site the router claims keeps
    its answer; an unclaimed one asks again on every call (the name may be published in L4
    later)."""
    vm = ref.linked.vm
    if ref.name in vm.globals:
        return resolve_call(ex, ref, d, *args)
    router = vm.router
    cache = ref.code.site_cache
    entry = cache[ref.index]
    if (entry is None or entry[0] is not router or entry[1] != router.version
            or not entry[2]):
        entry = (router, router.version, claim(router, ref.site))
    how = entry[2]
    cache[ref.index] = (entry[0], entry[1], NOT_CLAIMED if how == ONCE else how)
    if how:
        return _at(ex, d, ex._route, ref.name, MISSING, list(args), ref.meta, ref.code, ref.pc)
    raise UnboundSymbolError(f"unbound symbol: {ref.name}")


def routed_call(ex: Any, ref: SiteRef, d: int, *args: Any) -> Any:
    callee = ref.linked.vm.globals.get(ref.name, MISSING)
    return _at(ex, d, ex._route, ref.name, callee, list(args), ref.meta, ref.code, ref.pc)


def once_call(ex: Any, ref: SiteRef, d: int, *args: Any) -> Any:
    """Route the first call at a `Claim.ONCE` site; later calls resolve to a direct call."""
    router = ref.linked.vm.router
    cache = ref.code.site_cache
    entry = cache[ref.index]
    if (entry is None or entry[0] is not router or entry[1] != router.version
            or entry[2] != ONCE):
        return resolve_call(ex, ref, d, *args)  # consumed meanwhile, or the policy changed
    cache[ref.index] = (entry[0], entry[1], NOT_CLAIMED)
    ref.forget()
    return routed_call(ex, ref, d, *args)


def vm_builtin_call(ex: Any, fn: Builtin, d: int, *args: Any) -> Any:
    return _at(ex, d, fn.fn, ex, *args)


def builtin_arity_call(ex: Any, fn: Builtin, d: int, *args: Any) -> Any:
    check_builtin_arity(fn, len(args))
    raise AssertionError("unreachable: the arity check failed at resolution")


def closure_arity_call(ex: Any, fn: Closure, d: int, *args: Any) -> Any:
    raise arity_error(fn.code, len(args))


def loop_call(ex: Any, fn: Closure, d: int, *args: Any) -> Any:
    return _at(ex, d, ex._run_closure, fn, list(args))


def data_call(ex: Any, value: Any, d: int, *args: Any) -> Any:
    return apply_data(value, args)


# -- runtime helpers of the generated code ----------------------------------------------------
def _at(ex: Any, d: int, fn: Any, *args: Any) -> Any:
    """`fn(*args)` called out of a translated frame at depth `d`: `ex.depth` says so for the
    duration (builtins, routers and the loop read it) and is as it was afterwards, so
    translated code never has to restore it."""
    saved = ex.depth
    ex.depth = d
    try:
        return fn(*args)
    finally:
        ex.depth = saved


def slow_op(handler: Any, ex: Any, d: int, code: Code, arg: int, values: list[Any],
            pc: int) -> list[Any]:
    """An op the translator leaves to the VM's own handler, on `values` as its stack."""
    _at(ex, d, handler, ex, code, arg, values, [], pc)
    return values


def call_value(ex: Any, ref: CallSiteRef, d: int, fn: Any, *args: Any) -> Any:
    """CALL: a callee computed at run time, as the VM loop calls it."""
    if type(fn) is Closure:
        code = fn.code
        if code.hint is not None:
            return _at(ex, d, ex._route, ref.name or fn.name, fn, list(args), ref.meta,
                       ref.code, ref.pc)
        linked = code.fast
        if linked is None or linked.vm is not ex.vm:
            linked = ex.vm.linked(code)
        if linked is not None:
            argc = len(args)
            if argc != linked.nparams and not (linked.rest and argc > linked.nparams):
                raise arity_error(code, argc)
            return linked.fn(ex, fn, d, *args)
    return _at(ex, d, ex.call_direct, fn, list(args))


def deep_call(ex: Any, closure: Closure, d: int, args: list[Any]) -> Any:
    """A call nested deeper than the fast path goes: the VM loop runs it (and enforces
    max_depth)."""
    return _at(ex, d, ex._loop, closure, args)


def _unset_local() -> None:
    raise UnboundSymbolError("variable used before its binding ran")


def _unset_free(name: str) -> None:
    raise UnboundSymbolError(f"{name} used before its binding ran")


def _unbound(name: str) -> None:
    raise UnboundSymbolError(f"unbound symbol: {name}")


RUNTIME: dict[str, Any] = {
    "rt_type": type, "rt_int": int, "rt_exception": Exception,
    "rt_unset": UNSET, "rt_missing": MISSING, "rt_cell": Cell, "rt_closure": Closure,
    "rt_error_value": ErrorValue.of, "rt_fault": fault, "rt_deep": deep_call,
    "rt_call_value": call_value, "rt_unset_local": _unset_local, "rt_unset_free": _unset_free,
    "rt_unbound": _unbound, "rt_slow_op": slow_op, "rt_recur": Recur,
}
