"""The bytecode verifier: proves decoded code is safe to run before any of it runs.

It checks every opcode and operand (table indices, local slots, free variables, call sites),
that jumps go forward to an instruction of the same function, and, by following every path
through the function, that the stack never underflows, has the same height wherever paths
meet, holds exactly the return value at RETURN, and that try blocks nest properly. Because
jumps only go forward, one pass in instruction order visits each instruction once, after all
of its predecessors: verification is linear in the size of the code.
"""

from __future__ import annotations

from rtfs import typecheck
from rtfs.bytecode import (
    CONST_OPS,
    FREE_OPS,
    JUMP_OPS,
    LOCAL_OPS,
    NAME_OPS,
    SITE_OPS,
    TERMINAL_OPS,
    Code,
    Op,
    branch_effect,
    stack_effect,
)
from rtfs.errors import BytecodeError

MAX_STACK = 65_535
MAX_LOCALS = 65_535
MAX_OPERAND = 65_535

_VALID_OPS = frozenset(int(op) for op in Op)

State = tuple[int, tuple[tuple[int, int], ...]]  # stack height, open try blocks


def verify(code: Code) -> None:
    """Raise BytecodeError unless `code` and every function nested in it is well formed."""
    _verify_one(code)
    for child in code.children():
        verify(child)
    code.verified = True


def _fail(code: Code, pc: int | None, message: str) -> BytecodeError:
    where = f" at instruction {pc}" if pc is not None else ""
    return BytecodeError(f"invalid bytecode in {code.qualname!r}{where}: {message}")


def _verify_one(code: Code) -> None:
    count = len(code.ops)
    if count == 0 or len(code.args) != count or len(code.positions) != 2 * count:
        raise _fail(code, None, "instruction, operand and position tables disagree")
    if not 0 <= code.nlocals <= MAX_LOCALS:
        raise _fail(code, None, f"{code.nlocals} locals")
    if len(code.params) + (code.rest is not None) > code.nlocals:
        raise _fail(code, None, "more parameters than local slots")
    if len(code.site_cache) != len(code.sites):
        code.site_cache = [None] * len(code.sites)
    for pc in range(count):
        if code.ops[pc] not in _VALID_OPS:
            raise _fail(code, pc, f"unknown opcode {code.ops[pc]}")
        _check_operand(code, pc, Op(code.ops[pc]), code.args[pc])
    _check_stack(code)


def _check_operand(code: Code, pc: int, op: Op, arg: int) -> None:
    if not 0 <= arg <= max(MAX_OPERAND, len(code.ops)):
        raise _fail(code, pc, f"operand {arg} out of range")
    limits = (
        (CONST_OPS, len(code.consts), "constant"), (LOCAL_OPS, code.nlocals, "local slot"),
        (FREE_OPS, len(code.freevars), "free variable"), (NAME_OPS, len(code.names), "name"),
        (SITE_OPS, len(code.sites), "call site"),
    )
    for ops, size, what in limits:
        if op in ops and arg >= size:
            raise _fail(code, pc, f"{what} {arg} does not exist ({size} defined)")
    if op in JUMP_OPS and not pc < arg < len(code.ops):
        raise _fail(code, pc, f"jump to {arg} is not a later instruction")
    if op is Op.MAKE_CLOSURE and not isinstance(code.consts[arg], Code):
        raise _fail(code, pc, "MAKE_CLOSURE of a constant that is not code")
    if op is Op.ERR_MATCHES and not isinstance(code.consts[arg], str):
        raise _fail(code, pc, "ERR_MATCHES needs an error kind name")
    if op is Op.CHECK_TYPE:
        problem = typecheck.annotation_problem(code.consts[arg])
        if problem is not None:
            raise _fail(code, pc, f"CHECK_TYPE: {problem}")
    if op is Op.IS_TYPE:
        problem = typecheck.annotation_problem(("is", code.consts[arg]))
        if problem is not None:
            raise _fail(code, pc, f"IS_TYPE: {problem}")
    if op is Op.MAP_REST and type(code.consts[arg]) is not tuple:
        raise _fail(code, pc, "MAP_REST needs a vector of keys")
    if op is Op.BUILD_QQ and not _is_qq_spec(code.consts[arg]):
        raise _fail(code, pc, "BUILD_QQ needs (kind, flags)")
    if op in SITE_OPS:
        site = code.sites[arg]
        if not 0 <= site.argc <= MAX_OPERAND:
            raise _fail(code, pc, f"call with {site.argc} arguments")
        if op is not Op.CALL and not site.name:
            raise _fail(code, pc, "a global or capability call without a name")


def _is_qq_spec(spec: object) -> bool:
    return (type(spec) is tuple and len(spec) == 2 and spec[0] in ("list", "vector", "map", "set")
            and type(spec[1]) is tuple and len(spec[1]) <= MAX_OPERAND
            and all(type(flag) is bool for flag in spec[1]))


def _check_stack(code: Code) -> None:
    states: dict[int, State] = {0: (0, ())}
    for pc in range(len(code.ops)):
        state = states.get(pc)
        if state is None:
            continue  # unreachable
        op, arg = Op(code.ops[pc]), code.args[pc]
        height, blocks = state
        needed, effect = stack_effect(op, arg, code)
        if height < needed:
            raise _fail(code, pc, f"{op.name} needs {needed} stack values, {height} present")
        after = height + effect
        if after > MAX_STACK:
            raise _fail(code, pc, "stack grows beyond its limit")
        if op is Op.RETURN and (height != 1 or blocks):
            raise _fail(code, pc, "RETURN must leave exactly the result and no open try block")
        if op is Op.SETUP_TRY:
            _merge(code, states, arg, (height + 1, blocks), pc)
            blocks = blocks + ((arg, height),)
        elif op is Op.POP_TRY:
            if not blocks:
                raise _fail(code, pc, "POP_TRY without an open try block")
            blocks = blocks[:-1]
        elif op in JUMP_OPS:
            _merge(code, states, arg, (height + branch_effect(op), blocks), pc)
        if op in TERMINAL_OPS:
            continue
        if pc + 1 >= len(code.ops):
            raise _fail(code, pc, "execution can run past the last instruction")
        _merge(code, states, pc + 1, (after, blocks), pc)


def _merge(code: Code, states: dict[int, State], target: int, state: State, pc: int) -> None:
    known = states.setdefault(target, state)
    if known != state:
        raise _fail(code, pc, f"paths meet at {target} with different stack states "
                              f"({known[0]} vs {state[0]} values)")
