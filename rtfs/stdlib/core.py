"""Numbers, comparison, logic, type predicates, strings and output."""

from __future__ import annotations

import math
from typing import Any

from rtfs.deadline import checked, wait_s
from rtfs.errors import RtfsArithmeticError, RtfsTypeError, RtfsValueError
from rtfs.printer import format_float, preview, to_display, to_readable
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
    raise RtfsTypeError(f"{fn} expects numbers, got {type_name(value)} {preview(value, 40)}")


def expect_int(fn: str, value: Any) -> int:
    if type(value) is int:
        return value
    raise RtfsTypeError(f"{fn} expects an integer, got {type_name(value)}")


# -- arithmetic ---------------------------------------------------------------------------------
@builtin("+")
def add(*xs: Any) -> Any:
    if len(xs) == 2 and type(xs[0]) is int and type(xs[1]) is int:  # the common case, fast
        return xs[0] + xs[1]
    total = 0
    for x in checked(xs):
        total += _number("+", x)
    return total


@builtin("-")
def subtract(x: Any, *ys: Any) -> Any:
    if len(ys) == 1 and type(x) is int and type(ys[0]) is int:
        return x - ys[0]
    result = _number("-", x)
    if not ys:
        return -result
    for y in checked(ys):
        result -= _number("-", y)
    return result


@builtin("*")
def multiply(*xs: Any) -> Any:
    product = 1
    for x in checked(xs):
        product *= _number("*", x)
    return product


@builtin("/")
def divide(x: Any, *ys: Any) -> Any:
    """Integer division stays an integer when it is exact: (/ 6 2) is 3, (/ 5 2) is 2.5."""
    if not ys:
        x, ys = 1, (x,)
    result = _number("/", x)
    for y in checked(ys):
        if _number("/", y) == 0:
            raise RtfsArithmeticError("division by zero")
        if type(result) is int and type(y) is int and result % y == 0:
            result //= y
        else:
            result = result / y
    return result


@builtin("mod")
def mod(x: Any, y: Any) -> Any:
    """Modulus with the sign of the divisor."""
    if _number("mod", y) == 0:
        raise RtfsArithmeticError("division by zero")
    return _number("mod", x) % y


@builtin("rem")
def rem(x: Any, y: Any) -> Any:
    """Remainder with the sign of the dividend."""
    if _number("rem", y) == 0:
        raise RtfsArithmeticError("division by zero")
    if type(x) is int and type(y) is int:
        return x - y * _trunc_div(x, y)
    try:
        return math.fmod(_number("rem", x), y)
    except ValueError:  # an infinite dividend: no remainder
        return math.nan


@builtin("quot")
def quot(x: Any, y: Any) -> Any:
    """Division truncated toward zero."""
    if _number("quot", y) == 0:
        raise RtfsArithmeticError("division by zero")
    if type(x) is int and type(y) is int:
        return _trunc_div(x, y)
    ratio = _number("quot", x) / y
    return float(math.trunc(ratio)) if math.isfinite(ratio) else ratio


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
    for y in checked(xs):
        if _number("max", y) > best:
            best = y
    return best


@builtin("min")
def minimum(x: Any, *xs: Any) -> Any:
    best = _number("min", x)
    for y in checked(xs):
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
    return math.sqrt(x)


@builtin("pow")
def power(base: Any, exponent: Any) -> Any:
    _number("pow", base)
    if type(exponent) is int and type(base) is int and exponent >= 0:
        if exponent > 100_000:
            raise RtfsValueError("pow exponent above 100000")
        return base**exponent
    try:
        return float(base) ** _number("pow", exponent)
    except (OverflowError, ZeroDivisionError) as err:
        raise RtfsArithmeticError(f"pow: {err}") from err


def _finite(fn: str, value: Any) -> Any:
    if type(_number(fn, value)) is float and not math.isfinite(value):
        raise RtfsArithmeticError(f"{fn} of {format_float(value)} has no integer value")
    return value


@builtin("floor")
def floor(x: Any) -> int:
    return math.floor(_finite("floor", x))


@builtin("ceil")
def ceil(x: Any) -> int:
    return math.ceil(_finite("ceil", x))


@builtin("round")
def round_(x: Any) -> int:
    """Half away from zero."""
    value = _finite("round", x)
    return int(math.floor(abs(value) + 0.5)) * (1 if value >= 0 else -1)


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
    return all(rtfs_equal(x, y) for y in checked(ys))


@builtin("not=")
def not_equal(x: Any, *ys: Any) -> bool:
    return not equal(x, *ys)


def _chain(name: str, holds: Any) -> None:
    def compare(x: Any, *ys: Any) -> bool:
        if len(ys) == 1 and type(x) is int and type(ys[0]) is int:
            return holds(x, ys[0])
        previous = _number(name, x)
        for y in checked(ys):
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
    def check(x: Any) -> bool:  # exactly one argument: (int? 1 2) is an arity error
        return test(x)

    for name in names:
        builtin(name)(check)


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


@builtin("keyword")
def keyword(name: Any) -> Keyword:
    if type(name) is Keyword:
        return name
    if type(name) not in (str, Symbol) or not str(getattr(name, "name", name)):
        raise RtfsTypeError("keyword takes a non-empty string or symbol")
    return Keyword(getattr(name, "name", name))


@builtin("symbol")
def symbol(name: Any) -> Symbol:
    if type(name) is not str or not name:
        raise RtfsTypeError("symbol takes a non-empty string")
    return Symbol(name)


@builtin("name")
def name_of(x: Any) -> str:
    if type(x) in (Keyword, Symbol):
        return x.name
    if type(x) is str:
        return x
    raise RtfsTypeError(f"name takes a keyword, symbol or string, got {type_name(x)}")


# -- strings ----------------------------------------------------------------------------------
def _string(fn: str, value: Any) -> str:
    if type(value) is str:
        return value
    raise RtfsTypeError(f"{fn} expects a string, got {type_name(value)}")


@builtin("str")
def str_(*xs: Any) -> str:
    return "".join(to_display(x) for x in checked(xs))


@builtin("pr-str")
def pr_str(*xs: Any) -> str:
    return " ".join(to_readable(x) for x in checked(xs))


@builtin("substring")
def substring(s: Any, start: Any, end: Any = None) -> str:
    text = _string("substring", s)
    stop = len(text) if end is None else min(expect_int("substring", end), len(text))
    if not 0 <= expect_int("substring", start) <= stop:
        raise RtfsValueError(f"substring range {start}..{stop} outside 0..{len(text)}")
    return text[start:stop]


@builtin("string-length")
def string_length(s: Any) -> int:
    return len(_string("string-length", s))


@builtin("string-contains")
def string_contains(s: Any, part: Any) -> bool:
    return _string("string-contains", part) in _string("string-contains", s)


@builtin("upper-case")
def upper_case(s: Any) -> str:
    return _string("upper-case", s).upper()


@builtin("lower-case")
def lower_case(s: Any) -> str:
    return _string("lower-case", s).lower()


@builtin("trim")
def trim(s: Any) -> str:
    return _string("trim", s).strip()


@builtin("starts-with?")
def starts_with(s: Any, prefix: Any) -> bool:
    return _string("starts-with?", s).startswith(_string("starts-with?", prefix))


@builtin("ends-with?")
def ends_with(s: Any, suffix: Any) -> bool:
    return _string("ends-with?", s).endswith(_string("ends-with?", suffix))


@builtin("split")
def split(s: Any, separator: Any) -> tuple[str, ...]:
    sep = _string("split", separator)
    if not sep:
        raise RtfsValueError("split needs a non-empty separator")
    return tuple(_string("split", s).split(sep))


@builtin("join")
def join(separator: Any, items: Any = None) -> str:
    if items is None:
        separator, items = "", separator
    from rtfs.stdlib.seqs import as_seq

    return _string("join", separator).join(
        to_display(x) for x in checked(as_seq("join", items)))


@builtin("string-replace")
def string_replace(s: Any, old: Any, new: Any) -> str:
    return _string("string-replace", s).replace(_string("string-replace", old),
                                                _string("string-replace", new))


# -- output and time --------------------------------------------------------------------------
@builtin("println", pure=False, needs_vm=True)
def println(ex: Any, *xs: Any) -> None:
    ex.vm.write(" ".join(to_display(x) for x in checked(xs)) + "\n")


@builtin("print", pure=False, needs_vm=True)
def print_(ex: Any, *xs: Any) -> None:
    ex.vm.write(" ".join(to_display(x) for x in checked(xs)))


@builtin("thread/sleep", pure=False)
def sleep(ms: Any) -> None:
    if _number("thread/sleep", ms) < 0:
        raise RtfsValueError("thread/sleep takes a non-negative number of milliseconds")
    wait_s(ms / 1000)
