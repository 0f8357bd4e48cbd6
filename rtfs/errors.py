"""The RTFS error hierarchy.

Every error is an `RtfsError` and also inherits the built-in exception that matches it, so
Python callers can catch `TypeError` or `SyntaxError` as usual. User errors carry the source
position of the form that failed; `InternalError` marks a fault of the implementation.
All errors survive pickling (their constructor arguments are exactly `self.args`), because
they cross process boundaries in the cluster.
"""

from __future__ import annotations


class RtfsError(Exception):
    """Root of every error RTFS raises."""

    kind = "Error"

    def __init__(self, message: str, line: int | None = None, col: int | None = None) -> None:
        super().__init__(message, line, col)
        self.message = message
        self.line = line
        self.col = col

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        return f"{self.message} ({self.line}:{self.col})"

    def at(self, line: int | None, col: int | None) -> RtfsError:
        """Return this error with a position, unless it already has one."""
        if self.line is not None or line is None:
            return self
        return type(self)(self.args[0], line, col, *self.args[3:])


class RtfsSyntaxError(RtfsError, SyntaxError):
    """Text that cannot be read, or a special form used with the wrong shape."""

    kind = "SyntaxError"


class ArityError(RtfsError, TypeError):
    """A function called with the wrong number of arguments."""

    kind = "ArityError"


class RtfsTypeError(RtfsError, TypeError):
    """A value of the wrong type given to an operation."""

    kind = "TypeError"


class RtfsValidationError(RtfsTypeError):
    """A value that does not match a type annotation (a TypeError too: `(catch TypeError e)`
    and `(catch ValidationError e)` both take it)."""

    kind = "ValidationError"


class UnboundSymbolError(RtfsError, NameError):
    """A symbol with no binding in scope or in the environment."""

    kind = "UnboundSymbol"


class RtfsArithmeticError(RtfsError, ArithmeticError):
    """Division by zero and other arithmetic faults."""

    kind = "ArithmeticError"


class DivisionByZeroError(RtfsArithmeticError, ZeroDivisionError):
    """A division (or modulus) by zero: caught by `ArithmeticError` and `:division-by-zero`."""


class RtfsRuntimeError(RtfsError):
    """An error a program signals itself, with `(error "message" data?)` or `(throw
    (RuntimeError. "message"))`; `(catch RuntimeError e)` takes it with every evaluation
    error. `data` (a map, or None) is what the program attached."""

    kind = "RuntimeError"

    def __init__(self, message: str, line: int | None = None, col: int | None = None,
                 data: object = None) -> None:
        super().__init__(message, line, col)
        self.args = (message, line, col, data)
        self.data = data


class RtfsIndexError(RtfsError, IndexError):
    """An index outside a collection where the operation requires one inside."""

    kind = "IndexError"


class RtfsValueError(RtfsError, ValueError):
    """An argument of the right type but an unusable value."""

    kind = "ValueError"


class MatchError(RtfsError, ValueError):
    """No clause of a `match` accepted the value."""

    kind = "MatchError"


class CapabilityError(RtfsError, LookupError):
    """A `(call :capability ...)` that no router or registry can serve."""

    kind = "CapabilityError"


class RtfsRecursionError(RtfsError, RecursionError):
    """Calls nested deeper than the VM allows."""

    kind = "RecursionError"


class UserError(RtfsError):
    """An error raised by the program itself with `(throw value)`; `value` is what it threw."""

    kind = "UserError"

    def __init__(
        self, message: str, line: int | None = None, col: int | None = None, value: object = None
    ) -> None:
        super().__init__(message, line, col)
        self.args = (message, line, col, value)
        self.value = value


class HostError(RtfsError):
    """An error raised outside RTFS code: by a router, a capability or a host function.
    The original exception is its `__cause__`."""

    kind = "HostError"


class BytecodeError(RtfsError, ValueError):
    """Bytes that do not decode or verify as RTFS bytecode; nothing of them runs."""

    kind = "BytecodeError"


class InternalError(RtfsError, RuntimeError):
    """A fault of the implementation, not of the program."""

    kind = "InternalError"


ALL_ERRORS: tuple[type[RtfsError], ...] = (
    RtfsError,
    RtfsSyntaxError,
    ArityError,
    RtfsTypeError,
    RtfsValidationError,
    UnboundSymbolError,
    RtfsArithmeticError,
    DivisionByZeroError,
    RtfsRuntimeError,
    RtfsIndexError,
    RtfsValueError,
    MatchError,
    CapabilityError,
    RtfsRecursionError,
    UserError,
    HostError,
    BytecodeError,
    InternalError,
)
