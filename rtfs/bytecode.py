"""Bytecode: opcodes, the `Code` object, and what each opcode does to the stack.

A `Code` is one function (or the top level of a program). Its instructions are two parallel
tuples, `ops` and `args`; jumps name an instruction index, and only ever point forward (RTFS
has no loops: repetition is recursion), which is what lets the verifier prove that verified
code cannot spin forever inside one frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, NamedTuple

import xxhash

from rtfs.canonical import packb, value_to_plain
from rtfs.values import EMPTY_MAP, DelegationHint, Map

FORMAT_VERSION = 1
COMPILER_VERSION = "rtfs-py-1"


class Op(IntEnum):
    LOAD_CONST = 1  # push consts[arg]
    LOAD_LOCAL = 2  # push locals[arg]
    STORE_LOCAL = 3  # locals[arg] = pop
    LOAD_DEREF = 4  # push locals[arg].value (a captured variable of this frame)
    STORE_DEREF = 5  # locals[arg].value = pop
    MAKE_CELL = 6  # locals[arg] = new unset cell
    CELLIFY = 7  # locals[arg] = Cell(locals[arg]) (a captured parameter)
    LOAD_FREE = 8  # push closure.cells[arg].value
    LOAD_CELLREF = 9  # push the cell in locals[arg] (to build a closure)
    LOAD_FREEREF = 10  # push closure.cells[arg] (to build a closure)
    LOAD_GLOBAL = 11  # push the global named names[arg]
    DEF_GLOBAL = 12  # global names[arg] = top (the value stays)
    LOAD_SELF = 13  # push the running closure
    POP = 14
    DUP = 15
    JUMP = 16  # pc = arg
    JUMP_IF_FALSE = 17  # pop; jump when nil/false
    JUMP_IF_FALSE_OR_POP = 18  # keep and jump when nil/false, else pop
    JUMP_IF_TRUE_OR_POP = 19  # keep and jump when truthy, else pop
    CALL = 20  # sites[arg]: callee and argc arguments on the stack
    CALL_GLOBAL = 21  # sites[arg]: callee is the global sites[arg].name
    CALL_CAP = 22  # sites[arg]: (call :capability ...) with argc arguments
    RETURN = 23
    MAKE_CLOSURE = 24  # consts[arg] is a Code; pops its len(freevars) cells
    BUILD_VECTOR = 25  # pop arg items
    BUILD_MAP = 26  # pop 2*arg items
    BUILD_SET = 27  # pop arg items
    SETUP_TRY = 28  # errors until POP_TRY go to arg, with the error value pushed
    POP_TRY = 29
    RERAISE = 30  # pop an error value and raise it again
    ERR_MATCHES = 31  # pop error value, push whether it is of the kind named by consts[arg]
    NTH_OR_NIL = 32  # push item arg of the sequence on top (which stays)
    REST_FROM = 33  # push the items from arg on of the sequence on top (which stays)
    GET_KEY = 34  # push (get top consts[arg]) (top stays)
    GET_KEY_OR = 35  # pop a default; push (get top consts[arg] default) (top stays)
    TEST_SEQ = 36  # push whether top is a sequence of exactly arg items (top stays)
    TEST_SEQ_MIN = 37  # push whether top is a sequence of at least arg items (top stays)
    TEST_MAP = 38  # push whether top is a map (top stays)
    HAS_KEY = 39  # push whether the map on top has key consts[arg] (top stays)
    EQUAL = 40  # pop two, push RTFS equality
    MATCH_FAIL = 41  # pop the value no clause matched and raise
    PARALLEL = 42  # pop arg thunks, run them (concurrently when worth it), push the results
    THROW = 43  # pop a value and raise it as a user error
    CHECK_TYPE = 44  # consts[arg] = (label, type expression[, :each]): check top (which stays)
    MAP_REST = 45  # push the map on top without the keys in the tuple consts[arg] (top stays)
    IS_TYPE = 46  # push whether top belongs to the type expression consts[arg] (top stays)
    LOOP = 47  # pop a body function and arg values; call it until it returns no RECUR
    RECUR = 48  # pop arg values, push the request to run the enclosing loop body with them
    FOR = 49  # pop a body function and a collection; push the concatenated results
    DOTIMES = 50  # pop a body function and a count; call it with 0..count-1; push nil
    BUILD_QQ = 51  # consts[arg] = (kind, spliced flags): pop the parts, push the collection


# Ops whose argument indexes each table; the verifier checks the index is in range.
CONST_OPS = frozenset({Op.LOAD_CONST, Op.MAKE_CLOSURE, Op.ERR_MATCHES, Op.GET_KEY,
                       Op.GET_KEY_OR, Op.HAS_KEY, Op.CHECK_TYPE, Op.MAP_REST, Op.IS_TYPE,
                       Op.BUILD_QQ})
LOCAL_OPS = frozenset({Op.LOAD_LOCAL, Op.STORE_LOCAL, Op.LOAD_DEREF, Op.STORE_DEREF,
                       Op.MAKE_CELL, Op.CELLIFY, Op.LOAD_CELLREF})
FREE_OPS = frozenset({Op.LOAD_FREE, Op.LOAD_FREEREF})
NAME_OPS = frozenset({Op.LOAD_GLOBAL, Op.DEF_GLOBAL})
SITE_OPS = frozenset({Op.CALL, Op.CALL_GLOBAL, Op.CALL_CAP})
JUMP_OPS = frozenset({Op.JUMP, Op.JUMP_IF_FALSE, Op.JUMP_IF_FALSE_OR_POP,
                      Op.JUMP_IF_TRUE_OR_POP, Op.SETUP_TRY})
TERMINAL_OPS = frozenset({Op.RETURN, Op.RERAISE, Op.MATCH_FAIL, Op.THROW, Op.JUMP})

# Fixed stack effects (pushes minus pops). The others depend on the argument or a table.
_FIXED_EFFECT = {
    Op.LOAD_CONST: 1, Op.LOAD_LOCAL: 1, Op.STORE_LOCAL: -1, Op.LOAD_DEREF: 1,
    Op.STORE_DEREF: -1, Op.MAKE_CELL: 0, Op.CELLIFY: 0, Op.LOAD_FREE: 1, Op.LOAD_CELLREF: 1,
    Op.LOAD_FREEREF: 1, Op.LOAD_GLOBAL: 1, Op.DEF_GLOBAL: 0, Op.LOAD_SELF: 1, Op.POP: -1,
    Op.DUP: 1, Op.JUMP: 0, Op.JUMP_IF_FALSE: -1, Op.RETURN: -1, Op.SETUP_TRY: 0, Op.POP_TRY: 0,
    Op.RERAISE: -1, Op.ERR_MATCHES: 0, Op.NTH_OR_NIL: 1, Op.REST_FROM: 1, Op.GET_KEY: 1,
    Op.GET_KEY_OR: 0, Op.TEST_SEQ: 1, Op.TEST_SEQ_MIN: 1, Op.TEST_MAP: 1, Op.HAS_KEY: 1,
    Op.EQUAL: -1, Op.MATCH_FAIL: -1, Op.THROW: -1, Op.CHECK_TYPE: 0, Op.MAP_REST: 1,
    Op.IS_TYPE: 1, Op.FOR: -1, Op.DOTIMES: -1,
    # conditional keeps: the fall-through pops, the jump keeps (see `branch_effect`)
    Op.JUMP_IF_FALSE_OR_POP: -1, Op.JUMP_IF_TRUE_OR_POP: -1,
}
# Values an op needs on the stack before it runs (beyond what its effect says).
_FIXED_NEEDS = {
    Op.STORE_LOCAL: 1, Op.STORE_DEREF: 1, Op.DEF_GLOBAL: 1, Op.POP: 1, Op.DUP: 1,
    Op.JUMP_IF_FALSE: 1, Op.JUMP_IF_FALSE_OR_POP: 1, Op.JUMP_IF_TRUE_OR_POP: 1, Op.RETURN: 1,
    Op.RERAISE: 1, Op.ERR_MATCHES: 1, Op.NTH_OR_NIL: 1, Op.REST_FROM: 1, Op.GET_KEY: 1,
    Op.GET_KEY_OR: 2, Op.TEST_SEQ: 1, Op.TEST_SEQ_MIN: 1, Op.TEST_MAP: 1, Op.HAS_KEY: 1,
    Op.EQUAL: 2, Op.MATCH_FAIL: 1, Op.THROW: 1, Op.CHECK_TYPE: 1, Op.MAP_REST: 1,
    Op.IS_TYPE: 1, Op.FOR: 2, Op.DOTIMES: 2,
}


class Site(NamedTuple):
    """A call site: how many arguments, the callee's global name (or capability id), and the
    metadata map written on the call form (`^{:sensitive true} (f x)`)."""

    argc: int
    name: str | None
    meta: Map


def stack_effect(op: Op, arg: int, code: Code) -> tuple[int, int]:
    """(values needed on the stack, net change) of one instruction of `code`."""
    if op in _FIXED_EFFECT:
        return _FIXED_NEEDS.get(op, 0), _FIXED_EFFECT[op]
    if op in SITE_OPS:
        argc = code.sites[arg].argc + (1 if op is Op.CALL else 0)
        return argc, 1 - argc
    if op is Op.MAKE_CLOSURE:
        nfree = len(code.consts[arg].freevars)
        return nfree, 1 - nfree
    if op is Op.BUILD_QQ:
        nparts = len(code.consts[arg][1])
        return nparts, 1 - nparts
    if op is Op.BUILD_MAP:
        return 2 * arg, 1 - 2 * arg
    if op in (Op.BUILD_VECTOR, Op.BUILD_SET, Op.PARALLEL, Op.RECUR):
        return arg, 1 - arg
    if op is Op.LOOP:
        return arg + 1, -arg
    raise KeyError(op)


def branch_effect(op: Op) -> int:
    """Net stack change along the taken branch of a jump (the fall-through uses stack_effect)."""
    if op in (Op.JUMP_IF_FALSE_OR_POP, Op.JUMP_IF_TRUE_OR_POP):
        return 0
    if op is Op.JUMP_IF_FALSE:
        return -1
    return 0


@dataclass(frozen=True, slots=True)
class Param:
    """A parameter as a caller sees it: its canonical text (a name or a destructuring pattern)
    and its declared type, if any."""

    name: str
    type: str | None = None


@dataclass(eq=False)
class Code:
    """One compiled function, or the top level of a program.

    `source_hash` is fixed at compile time (it covers the position-free source and the
    source hashes of the user functions this one calls, see rtfs.hashing); `interface_hash()`
    is computed from the signature fields here, so it survives encoding.
    """

    name: str
    qualname: str
    params: tuple[Param, ...]
    rest: Param | None
    return_type: str | None
    hint: DelegationHint | None
    nlocals: int
    freevars: tuple[str, ...]
    ops: tuple[int, ...]
    args: tuple[int, ...]
    consts: tuple[Any, ...]
    names: tuple[str, ...]
    sites: tuple[Site, ...]
    positions: tuple[int, ...]  # line, col per instruction, flattened
    source_hash: bytes | None = None
    deps: tuple[tuple[str, str | None], ...] = ()  # (called user function, its source hash)
    verified: bool = field(default=False, compare=False)
    # Run-time caches, never encoded: per call site, the router decision that site needs;
    # per CHECK_TYPE constant, its parsed type.
    site_cache: list[Any] = field(default_factory=list, compare=False, repr=False)
    type_cache: dict[int, Any] = field(default_factory=dict, compare=False, repr=False)
    _interface_hash: bytes | None = field(default=None, compare=False, repr=False)
    # The translated function linked to a VM (rtfs.fast), or a marker that the translator does
    # not cover this code. Not an __init__ field, so `dataclasses.replace` never copies it.
    fast: Any = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.site_cache:
            self.site_cache = [None] * len(self.sites)

    @property
    def nparams(self) -> int:
        return len(self.params)

    def position(self, pc: int) -> tuple[int | None, int | None]:
        if 0 <= pc and 2 * pc + 1 < len(self.positions):
            return self.positions[2 * pc], self.positions[2 * pc + 1]
        return None, None

    def interface_hash(self) -> bytes:
        """xxh3_128 of what a caller knows (DESIGN.md, "Keys")."""
        if self._interface_hash is None:
            self._interface_hash = interface_hash(self)
        return self._interface_hash

    def source_hash_hex(self) -> str | None:
        return self.source_hash.hex() if self.source_hash is not None else None

    def interface_hash_hex(self) -> str:
        return self.interface_hash().hex()

    def children(self) -> list[Code]:
        return [c for c in self.consts if isinstance(c, Code)]

    def disassemble(self) -> str:
        """Human-readable listing, for debugging and `rtfs dis`."""
        lines = [(f"code {self.qualname} params={[p.name for p in self.params]} "
                  f"rest={self.rest and self.rest.name} nlocals={self.nlocals} "
                  f"free={list(self.freevars)} hint={self.hint}")]
        for pc, (op, arg) in enumerate(zip(self.ops, self.args)):
            lines.append(f"  {pc:4d} {Op(op).name:<22} {arg:<5} {_describe(self, Op(op), arg)}")
        for child in self.children():
            lines.append(child.disassemble())
        return "\n".join(lines)


def _describe(code: Code, op: Op, arg: int) -> str:
    if op in CONST_OPS:
        const = code.consts[arg]
        return f"<code {const.qualname}>" if isinstance(const, Code) else repr(const)
    if op in NAME_OPS:
        return code.names[arg]
    if op in SITE_OPS:
        site = code.sites[arg]
        return f"argc={site.argc} name={site.name} meta={dict(site.meta) or ''}"
    return ""


def make_site(argc: int, name: str | None, meta: Map | None) -> Site:
    return Site(argc, name, meta if meta else EMPTY_MAP)


def hint_plain(hint: DelegationHint | None) -> Any:
    """A delegation hint as plain data (for hashes)."""
    if hint is None:
        return None
    return [str(hint.kind), hint.target, [[k, value_to_plain(v)] for k, v in hint.extra]]


def interface_hash(code: Code) -> bytes:
    """xxh3_128 of canonical msgpack `[format, "interface", qualified name, params and their
    types, rest, return type, hint]`: what a caller knows of a function (DESIGN.md, "Keys")."""
    params = [[p.name, p.type] for p in code.params]
    rest = [code.rest.name, code.rest.type] if code.rest is not None else None
    return xxhash.xxh3_128_digest(packb([FORMAT_VERSION, "interface", code.qualname, params,
                                         rest, code.return_type, hint_plain(code.hint)]))
