"""Numbers, comparison, logic, type predicates and output."""

from __future__ import annotations

import math
import time
from typing import Any

from rtfs.errors import DivisionByZeroError, RtfsArithmeticError, RtfsTypeError, RtfsValueError
from rtfs.printer import to_display, to_readable
from rtfs.stdlib import builtin
from rtfs.values import (
    Builtin,
    Closure,
    Keyword,
    Map,
    RList,
    Symbol,
    rtfs_equal,
    truthy,
    type_name,
)

_NUM = (int, float)


def _number(fn: str, value: Any) -> Any:
    if type(value) is int or type(value) is float:
        return value
    raise RtfsTypeError(f"{fn} expects numbers, got {type_name(value)} {to_readable(value)[:40]}")


def expect_int(fn: str, value: Any) -> int:
    if type(value) is int:
        return value
    raise RtfsTypeError(f"{fn} expects an integer, got {type_name(value)}")


# -- arithmetic ---------------------------------------------------------------------------------
# Mixing floats with integers too large for a float, or asking for the integer part of an
# infinity or NaN, raises OverflowError/ValueError in Python: each is an RTFS arithmetic error.
_NUMERIC_FAULTS = (OverflowError, ValueError)


def _fault(fn: str, err: Exception) -> RtfsArithmeticError:
    return RtfsArithmeticError(f"{fn}: {err}")


@builtin("+")
def add(*xs: Any) -> Any:
    if len(xs) == 2 and type(xs[0]) is int and type(xs[1]) is int:  # the common case, fast
        return xs[0] + xs[1]
    total = 0
    try:
        for x in xs:
            total += _number("+", x)
    except _NUMERIC_FAULTS as err:
        raise _fault("+", err) from err
    return total


@builtin("-")
def subtract(x: Any, *ys: Any) -> Any:
    if len(ys) == 1 and type(x) is int and type(ys[0]) is int:
        return x - ys[0]
    result = _number("-", x)
    if not ys:
        return -result
    try:
        for y in ys:
            result -= _number("-", y)
    except _NUMERIC_FAULTS as err:
        raise _fault("-", err) from err
    return result


@builtin("*")
def multiply(*xs: Any) -> Any:
    product = 1
    try:
        for x in xs:
            product *= _number("*", x)
    except _NUMERIC_FAULTS as err:
        raise _fault("*", err) from err
    return product


@builtin("/")
def divide(x: Any, *ys: Any) -> Any:
    """Integer division stays an integer when it is exact: (/ 6 2) is 3, (/ 5 2) is 2.5."""
    if not ys:
        x, ys = 1, (x,)
    result = _number("/", x)
    try:
        for y in ys:
            if _number("/", y) == 0:
                raise DivisionByZeroError("division by zero")
            if type(result) is int and type(y) is int and result % y == 0:
                result //= y
            else:
                result = result / y
    except _NUMERIC_FAULTS as err:
        raise _fault("/", err) from err
    return result


@builtin("mod")
def mod(x: Any, y: Any) -> Any:
    """Modulus with the sign of the divisor."""
    if _number("mod", y) == 0:
        raise DivisionByZeroError("division by zero")
    try:
        return _number("mod", x) % y
    except _NUMERIC_FAULTS as err:
        raise _fault("mod", err) from err


@builtin("rem")
def rem(x: Any, y: Any) -> Any:
    """Remainder with the sign of the dividend."""
    if _number("rem", y) == 0:
        raise DivisionByZeroError("division by zero")
    if type(x) is int and type(y) is int:
        return x - y * _trunc_div(x, y)
    try:
        return math.fmod(_number("rem", x), y)
    except _NUMERIC_FAULTS as err:
        raise _fault("rem", err) from err


@builtin("quot")
def quot(x: Any, y: Any) -> Any:
    """Division truncated toward zero."""
    if _number("quot", y) == 0:
        raise DivisionByZeroError("division by zero")
    if type(x) is int and type(y) is int:
        return _trunc_div(x, y)
    try:
        return float(math.trunc(_number("quot", x) / y))
    except _NUMERIC_FAULTS as err:
        raise _fault("quot", err) from err


def _trunc_div(x: int, y: int) -> int:
    q = abs(x) // abs(y)
    return q if (x >= 0) == (y >= 0) else -q


@builtin("inc")
def inc(x: Any) -> Any:
    return _number("inc", x) + 1


@builtin("dec")
def dec(x: Any) -> Any:
    return _number("dec", x) - 1


@builtin("max")
def maximum(x: Any, *xs: Any) -> Any:
    best = _number("max", x)
    for y in xs:
        if _number("max", y) > best:
            best = y
    return best


@builtin("min")
def minimum(x: Any, *xs: Any) -> Any:
    best = _number("min", x)
    for y in xs:
        if _number("min", y) < best:
            best = y
    return best


@builtin("abs")
def absolute(x: Any) -> Any:
    return abs(_number("abs", x))


@builtin("factorial")
def factorial(n: Any) -> int:
    if expect_int("factorial", n) < 0:
        raise RtfsValueError("factorial of a negative number")
    if n > 10_000:
        raise RtfsValueError("factorial argument above 10000")
    return math.factorial(n)


@builtin("sqrt")
def sqrt(x: Any) -> float:
    if _number("sqrt", x) < 0:
        raise RtfsArithmeticError("square root of a negative number")
    try:
        return math.sqrt(x)
    except _NUMERIC_FAULTS as err:
        raise _fault("sqrt", err) from err


@builtin("pow")
def power(base: Any, exponent: Any) -> Any:
    _number("pow", base)
    if type(exponent) is int and type(base) is int and exponent >= 0:
        if exponent > 100_000:
            raise RtfsValueError("pow exponent above 100000")
        return base**exponent
    try:
        result = float(base) ** _number("pow", exponent)
    except (OverflowError, ZeroDivisionError, ValueError) as err:
        raise RtfsArithmeticError(f"pow: {err}") from err
    if type(result) is not float:  # a negative base to a fractional power: a complex number
        raise RtfsArithmeticError(f"pow: {to_readable(base)} to the power "
                                  f"{to_readable(exponent)} is not a real number")
    return result


def _integral(fn: str, rounding: Any) -> Any:
    def to_integer(x: Any) -> int:
        value = _number(fn, x)
        try:
            return int(rounding(value))
        except _NUMERIC_FAULTS as err:
            raise _fault(fn, err) from err

    builtin(fn)(to_integer)
    return to_integer


floor = _integral("floor", math.floor)
ceil = _integral("ceil", math.ceil)
# half away from zero
round_ = _integral("round", lambda v: v if type(v) is int else
                   math.floor(abs(v) + 0.5) * (1 if v >= 0 else -1))


@builtin("zero?")
def is_zero(x: Any) -> bool:
    return _number("zero?", x) == 0


@builtin("pos?")
def is_pos(x: Any) -> bool:
    return _number("pos?", x) > 0


@builtin("neg?")
def is_neg(x: Any) -> bool:
    return _number("neg?", x) < 0


@builtin("even?")
def is_even(x: Any) -> bool:
    return expect_int("even?", x) % 2 == 0


@builtin("odd?")
def is_odd(x: Any) -> bool:
    return expect_int("odd?", x) % 2 == 1


# -- comparison and logic ---------------------------------------------------------------------
@builtin("=")
def equal(x: Any, *ys: Any) -> bool:
    return all(rtfs_equal(x, y) for y in ys)


@builtin("not=")
def not_equal(x: Any, *ys: Any) -> bool:
    return not equal(x, *ys)


builtin("!=")(not_equal)


def _chain(name: str, holds: Any) -> None:
    def compare(x: Any, *ys: Any) -> bool:
        if len(ys) == 1 and type(x) is int and type(ys[0]) is int:
            return holds(x, ys[0])
        previous = _number(name, x)
        for y in ys:
            if not holds(previous, _number(name, y)):
                return False
            previous = y
        return True

    builtin(name)(compare)


_chain("<", lambda a, b: a < b)
_chain(">", lambda a, b: a > b)
_chain("<=", lambda a, b: a <= b)
_chain(">=", lambda a, b: a >= b)


@builtin("not")
def not_(x: Any) -> bool:
    return not truthy(x)


@builtin("identity")
def identity(x: Any) -> Any:
    return x


# -- type predicates --------------------------------------------------------------------------
def _predicate(names: tuple[str, ...], test: Any) -> None:
    """Register `test` as a one-argument predicate (a closure: a default argument would give it
    a second, optional parameter, and `(int? 1 2)` would then call 2)."""

    def predicate(x: Any) -> bool:
        return test(x)

    for name in names:
        builtin(name)(predicate)


_predicate(("int?", "integer?"), lambda x: type(x) is int)
_predicate(("float?",), lambda x: type(x) is float)
_predicate(("number?",), lambda x: type(x) in _NUM)
_predicate(("string?",), lambda x: type(x) is str)
_predicate(("bool?", "boolean?"), lambda x: type(x) is bool)
_predicate(("nil?",), lambda x: x is None)
_predicate(("some?",), lambda x: x is not None)
_predicate(("true?",), lambda x: x is True)
_predicate(("false?",), lambda x: x is False)
_predicate(("map?",), lambda x: isinstance(x, Map))
_predicate(("vector?",), lambda x: type(x) is tuple)
_predicate(("list?", "seq?"), lambda x: type(x) is RList)
_predicate(("set?",), lambda x: type(x) is frozenset)
_predicate(("coll?",), lambda x: type(x) in (tuple, RList, frozenset) or isinstance(x, Map))
_predicate(("keyword?",), lambda x: type(x) is Keyword)
_predicate(("symbol?",), lambda x: type(x) is Symbol)
_predicate(("fn?",), lambda x: type(x) in (Closure, Builtin))


@builtin("type-of")
def type_of(x: Any) -> Keyword:
    return Keyword(type_name(x))


# -- output and time --------------------------------------------------------------------------
@builtin("println", pure=False, needs_vm=True)
def println(ex: Any, *xs: Any) -> None:
    ex.vm.write(" ".join(to_display(x) for x in xs) + "\n")


@builtin("print", pure=False, needs_vm=True)
def print_(ex: Any, *xs: Any) -> None:
    ex.vm.write(" ".join(to_display(x) for x in xs))


_MAX_SLEEP_MS = 86_400_000  # a day


@builtin("thread/sleep", pure=False)
def sleep(ms: Any) -> None:
    if not 0 <= _number("thread/sleep", ms) <= _MAX_SLEEP_MS:  # NaN fails this too
        raise RtfsValueError("thread/sleep takes a number of milliseconds from 0 to a day")
    time.sleep(ms / 1000)
