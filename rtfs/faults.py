"""Which host exceptions are the program's fault, and which are ours.

Running RTFS code raises RTFS errors on purpose for everything a program can get wrong.
A few host exceptions also mean "the program asked for too much" and are mapped to the
matching RTFS error: division by zero, arithmetic overflow, exhausted memory, and host stack
overflow. Anything else that escapes is a fault of the implementation: an `InternalError`,
reported as such ("please report"), never dressed up as a user error, so that a VM bug cannot
hide behind a plausible message and the fuzz tests can catch it.
"""

from __future__ import annotations

from typing import Any

from rtfs.bytecode import Op
from rtfs.errors import (
    BytecodeError,
    DivisionByZeroError,
    InternalError,
    RtfsArithmeticError,
    RtfsError,
    RtfsMemoryError,
    RtfsRecursionError,
)

# Host exceptions that the bytecode, not the implementation, is at fault for: the operands the
# verifier cannot type (a local used as a variable cell, an error value that is not one, a
# captured variable the function was not given). Only hostile bytecode gets there.
_MISUSE: dict[int, tuple[tuple[type[Exception], ...], str]] = {
    int(Op.LOAD_DEREF): ((AttributeError,), "reads a local that is not a variable cell"),
    int(Op.STORE_DEREF): ((AttributeError,), "writes a local that is not a variable cell"),
    int(Op.LOAD_FREE): ((AttributeError, IndexError), "reads a captured variable it lacks"),
    int(Op.LOAD_FREEREF): ((IndexError,), "captures a variable it lacks"),
    int(Op.RERAISE): ((AttributeError,), "re-raises a value that is not an error"),
    int(Op.ERR_MATCHES): ((AttributeError,), "tests a value that is not an error"),
    int(Op.HAS_KEY): ((TypeError,), "looks up a key in a value that is not a map"),
    int(Op.PARALLEL): ((AttributeError,), "runs a parallel branch that is not a function"),
}


def fault(exc: BaseException, code: Any, pc: int) -> RtfsError:
    """`exc`, raised at instruction `pc` of `code` (by the op itself or by what it called),
    as the RTFS error to report, with the position of that instruction."""
    if not isinstance(exc, RtfsError) and 0 <= pc < len(code.ops):
        misuse = _MISUSE.get(code.ops[pc])
        if misuse is not None and isinstance(exc, misuse[0]):
            line, col = code.position(pc)
            return BytecodeError(f"invalid bytecode in {code.qualname!r} at instruction {pc}: "
                                 f"it {misuse[1]}", line, col)
    return as_rtfs_error(exc, code, pc)


def as_rtfs_error(exc: BaseException, code: Any = None, pc: int = -1) -> RtfsError:
    """`exc`, raised while `code` ran instruction `pc`, as an RTFS error with a position."""
    line, col = code.position(pc) if code is not None else (None, None)
    if isinstance(exc, RtfsError):
        return exc.at(line, col)
    if isinstance(exc, ZeroDivisionError):
        return DivisionByZeroError("division by zero", line, col)
    if isinstance(exc, OverflowError):
        return RtfsArithmeticError(f"arithmetic overflow: {exc}", line, col)
    if isinstance(exc, RecursionError):
        return RtfsRecursionError("calls nested too deeply for the host stack", line, col)
    if isinstance(exc, MemoryError):
        return RtfsMemoryError("out of memory", line, col)
    return internal_error(exc, code, pc, line, col)


def internal_error(exc: BaseException, code: Any, pc: int, line: int | None,
                   col: int | None) -> InternalError:
    where = ""
    if code is not None and 0 <= pc < len(code.ops):
        where = f" in {code.qualname} at instruction {pc}"
    return InternalError(f"internal error{where}, please report it: "
                         f"{type(exc).__name__}: {exc}", line, col)
