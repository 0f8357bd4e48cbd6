"""The function builder the compiler emits into, and the assembler that turns it into `Code`.

Whether a variable lives in a plain slot or in a cell is only known once its whole function
has been compiled (a closure further down may capture it), so the compiler emits variable
accesses as pseudo-instructions naming the `Var`, and jumps naming a `Label`; `assemble`
resolves both in one pass.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from rtfs.bytecode import Code, Op, Param, make_site
from rtfs.errors import RtfsSyntaxError
from rtfs.values import DelegationHint, Map


class Label:
    __slots__ = ("pc",)

    def __init__(self) -> None:
        self.pc = -1


class Var:
    """A local variable. `pending` while a letrec binding has been declared but not run."""

    __slots__ = ("captured", "name", "pending", "slot")

    def __init__(self, name: str, slot: int) -> None:
        self.name, self.slot, self.captured, self.pending = name, slot, False, False


# Pseudo-ops, resolved by the assembler.
P_LABEL, P_LOAD, P_STORE, P_DECLARE, P_CELLIFY = -1, -2, -3, -4, -5


class Scope:
    __slots__ = ("parent", "vars")

    def __init__(self, parent: Scope | None) -> None:
        self.vars: dict[str, Var] = {}
        self.parent = parent


class FunctionBuilder:
    """Everything known about one function while its body is being compiled."""

    def __init__(self, parent: FunctionBuilder | None, name: str, qualname: str) -> None:
        self.parent = parent
        self.name, self.qualname = name, qualname
        self.scope = Scope(None)
        self.items: list[list[Any]] = []
        self.consts: list[Any] = []
        self._const_index: dict[Any, int] = {}
        self.names: list[str] = []
        self._name_index: dict[str, int] = {}
        self.sites: list[Any] = []
        self.nlocals = 0
        self.freevars: list[str] = []
        self.free_sources: list[Var | int] = []  # parent's Var, or index into parent's freevars
        self._free_index: dict[Any, int] = {}
        self.children = 0
        self.line, self.col = 0, 0

    # -- tables ----------------------------------------------------------------------------
    def const(self, value: Any) -> int:
        key = _const_key(value)
        index = self._const_index.get(key) if key is not None else None
        if index is None:
            index = len(self.consts)
            self.consts.append(value)
            if key is not None:
                self._const_index[key] = index
        return index

    def name_index(self, name: str) -> int:
        index = self._name_index.get(name)
        if index is None:
            index = self._name_index[name] = len(self.names)
            self.names.append(name)
        return index

    def site(self, argc: int, name: str | None, meta: Map | None) -> int:
        self.sites.append(make_site(argc, name, meta))
        return len(self.sites) - 1

    # -- variables -------------------------------------------------------------------------
    def new_var(self, name: str) -> Var:
        var = Var(name, self.nlocals)
        self.nlocals += 1
        return var

    def push_scope(self) -> Scope:
        self.scope = Scope(self.scope)
        return self.scope

    def pop_scope(self) -> None:
        assert self.scope.parent is not None
        self.scope = self.scope.parent

    def find_local(self, name: str, allow_pending: bool) -> Var | None:
        scope: Scope | None = self.scope
        while scope is not None:
            var = scope.vars.get(name)
            if var is not None and (allow_pending or not var.pending):
                return var
            scope = scope.parent
        return None

    def find_free(self, name: str) -> int | None:
        """Index of `name` among this function's free variables, capturing it if needed."""
        parent = self.parent
        if parent is None:
            return None
        source: Var | int | None = parent.find_local(name, allow_pending=True)
        if isinstance(source, Var):
            source.captured = True
        else:
            source = parent.find_free(name)
            if source is None:
                return None
        key = ("var", id(source)) if isinstance(source, Var) else ("free", source)
        index = self._free_index.get(key)
        if index is None:
            index = self._free_index[key] = len(self.freevars)
            self.freevars.append(name)
            self.free_sources.append(source)
        return index

    # -- emission --------------------------------------------------------------------------
    def emit(self, op: int, arg: Any = 0) -> None:
        self.items.append([op, arg, self.line, self.col])

    def mark(self, label: Label) -> None:
        self.items.append([P_LABEL, label, self.line, self.col])

    def assemble(self, *, params: tuple[Param, ...], rest: Param | None,
                 return_type: str | None, hint: DelegationHint | None) -> Code:
        ops: list[int] = []
        args: list[Any] = []
        positions: list[int] = []
        pending_jumps: list[tuple[int, Label]] = []
        for op, arg, line, col in self.items:
            if op == P_LABEL:
                arg.pc = len(ops)
                continue
            if op < 0:  # a variable pseudo-op: becomes a slot or a cell op, or nothing
                resolved = _resolve_var_op(op, arg)
                if resolved is None:
                    continue
                op, arg = resolved
            if isinstance(arg, Label):
                pending_jumps.append((len(ops), arg))
                arg = -1
            ops.append(int(op))
            args.append(arg)
            positions += [line, col]
        for pc, label in pending_jumps:
            if label.pc < 0:
                raise RtfsSyntaxError("internal: jump to an unplaced label")
            args[pc] = label.pc
        return Code(
            name=self.name, qualname=self.qualname, params=params, rest=rest,
            return_type=return_type, hint=hint, nlocals=self.nlocals,
            freevars=tuple(self.freevars), ops=tuple(ops), args=tuple(args),
            consts=tuple(self.consts), names=tuple(self.names), sites=tuple(self.sites),
            positions=tuple(positions),
        )


def _resolve_var_op(op: int, var: Var) -> tuple[Op, int] | None:
    if op == P_LOAD:
        return (Op.LOAD_DEREF if var.captured else Op.LOAD_LOCAL), var.slot
    if op == P_STORE:
        return (Op.STORE_DEREF if var.captured else Op.STORE_LOCAL), var.slot
    if op == P_DECLARE:
        return (Op.MAKE_CELL, var.slot) if var.captured else None
    if op == P_CELLIFY:
        return (Op.CELLIFY, var.slot) if var.captured else None
    raise AssertionError(op)


def _const_key(value: Any) -> Any:
    """A key under which equal constants share one slot; None for those never shared.

    Type is part of the key so that 1, 1.0 and true stay distinct; floats go by their bits
    so that 0.0 and -0.0 do too.
    """
    kind = type(value)
    if kind is float:
        return (float, struct.pack("<d", value)) if not math.isnan(value) else None
    if value is None or kind in (bool, int, str):
        return (kind, value)
    if kind.__name__ in ("Keyword", "Symbol"):
        return (kind, value.name)
    return None
