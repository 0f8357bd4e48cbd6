"""Strings, regular expressions, and conversions between text and numbers.

Names follow the specification's standard library (`string-upper`, `string-join`, ...) and the
shorter names programs also use (`upper-case`, `join`, ...). Regular expressions are Python's
`re` syntax; patterns are compiled once and cached.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

from rtfs.deadline import checked
from rtfs.errors import RtfsTypeError, RtfsValueError
from rtfs.printer import int_from_text, preview, to_display, to_readable
from rtfs.stdlib import builtin
from rtfs.stdlib.core import expect_int
from rtfs.stdlib.seqs import as_seq, count
from rtfs.values import Keyword, Symbol, type_name

_ABSENT = object()


def expect_string(fn: str, value: Any) -> str:
    if type(value) is str:
        return value
    raise RtfsTypeError(f"{fn} expects a string, got {type_name(value)}")


MAX_STRING_CHARS = 1 << 28
"""The longest string `str`, `pr-str` and `join` build (256 Mi characters): a program that
doubles a string in a loop stops with an RTFS error instead of taking the machine's memory."""


def _bounded_join(name: str, sep: str, parts: list[str]) -> str:
    """`sep.join(parts)`, refused before it is built when it would pass `MAX_STRING_CHARS`."""
    total = sum(map(len, parts)) + len(sep) * max(0, len(parts) - 1)
    if total > MAX_STRING_CHARS:
        raise RtfsValueError(f"{name} would build a string of {total} characters "
                             f"(at most {MAX_STRING_CHARS})")
    return sep.join(parts)


def _register(names: tuple[str, ...], fn: Any) -> None:
    for name in names:
        builtin(name)(fn)


# -- building and measuring --------------------------------------------------------------------
@builtin("str")
def str_(*xs: Any) -> str:
    return _bounded_join("str", "", [to_display(x) for x in checked(xs)])


@builtin("pr-str")
def pr_str(*xs: Any) -> str:
    return _bounded_join("pr-str", " ", [to_readable(x) for x in checked(xs)])


@builtin("substring")
def substring(s: Any, start: Any, end: Any = None) -> str:
    text = expect_string("substring", s)
    stop = len(text) if end is None else min(expect_int("substring", end), len(text))
    if not 0 <= expect_int("substring", start) <= stop:
        raise RtfsValueError(f"substring range {preview(start, 30)}..{preview(stop, 30)} "
                             f"outside 0..{len(text)}")
    return text[start:stop]


@builtin("string-length")
def string_length(s: Any) -> int:
    return len(expect_string("string-length", s))


def _contains(s: Any, part: Any) -> bool:
    return expect_string("string-contains?", part) in expect_string("string-contains?", s)


_register(("string-contains?", "string-contains", "includes?"), _contains)


def _upper(s: Any) -> str:
    return expect_string("string-upper", s).upper()


def _lower(s: Any) -> str:
    return expect_string("string-lower", s).lower()


def _trim(s: Any) -> str:
    return expect_string("string-trim", s).strip()


_register(("string-upper", "upper-case", "upper"), _upper)
_register(("string-lower", "lower-case", "lower"), _lower)
_register(("string-trim", "trim"), _trim)


@builtin("starts-with?")
def starts_with(s: Any, prefix: Any) -> bool:
    return expect_string("starts-with?", s).startswith(expect_string("starts-with?", prefix))


@builtin("ends-with?")
def ends_with(s: Any, suffix: Any) -> bool:
    return expect_string("ends-with?", s).endswith(expect_string("ends-with?", suffix))


@builtin("split")
def split(s: Any, separator: Any) -> tuple[str, ...]:
    sep = expect_string("split", separator)
    if not sep:
        raise RtfsValueError("split needs a non-empty separator")
    return tuple(expect_string("split", s).split(sep))


def _join(separator: Any, items: Any = _ABSENT) -> str:
    """`(join coll)` or `(join separator coll)`; nil joins to ""."""
    if items is _ABSENT:
        separator, items = "", separator
    sep = expect_string("join", separator)
    return _bounded_join("join", sep, [to_display(x) for x in checked(as_seq("join", items))])


_register(("join", "string-join"), _join)


@builtin("string-replace")
def string_replace(s: Any, old: Any, new: Any) -> str:
    return expect_string("string-replace", s).replace(expect_string("string-replace", old),
                                                      expect_string("string-replace", new))


# -- regular expressions -----------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as err:
        raise RtfsValueError(f"invalid regular expression {pattern!r}: {err}") from err


def _regex(fn: str, pattern: Any) -> re.Pattern[str]:
    return _compiled(expect_string(fn, pattern))


def _match_value(match: re.Match[str] | None) -> Any:
    """A match as Clojure gives it: the matched text, or [text group...] when there are
    groups (an unmatched group is nil)."""
    if match is None:
        return None
    if match.re.groups == 0:
        return match.group(0)
    return (match.group(0), *match.groups())


@builtin("re-matches")
def re_matches(pattern: Any, s: Any) -> Any:
    """The whole of `s` matched by `pattern` (nil when it does not match all of it)."""
    return _match_value(_regex("re-matches", pattern).fullmatch(expect_string("re-matches", s)))


@builtin("re-find")
def re_find(pattern: Any, s: Any) -> Any:
    """The first match of `pattern` in `s`, or nil."""
    return _match_value(_regex("re-find", pattern).search(expect_string("re-find", s)))


@builtin("re-seq")
def re_seq(pattern: Any, s: Any) -> tuple[Any, ...]:
    """Every match of `pattern` in `s`, in order."""
    regex = _regex("re-seq", pattern)
    return tuple(_match_value(m) for m in regex.finditer(expect_string("re-seq", s)))


# -- text <-> numbers --------------------------------------------------------------------------
_INT_TEXT = re.compile(r"\s*[+-]?\d+\s*")
_FLOAT_TEXT = re.compile(r"\s*[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)\s*")


@builtin("parse-int")
def parse_int(s: Any, radix: Any = 10) -> int | None:
    """The integer written in `s` (optionally in base `radix`, 2 to 36); nil when `s` is not
    an integer."""
    text = expect_string("parse-int", s).strip()
    base = expect_int("parse-int", radix)
    if not 2 <= base <= 36:
        raise RtfsValueError(f"parse-int radix {preview(base, 30)} outside 2..36")
    if base == 10:
        return int_from_text(text) if _INT_TEXT.fullmatch(text) else None
    try:
        return int(text, base) if "_" not in text else None
    except ValueError:
        return None


@builtin("parse-float")
def parse_float(s: Any) -> float | None:
    """The number written in `s` as a float; nil when `s` is not a number."""
    text = expect_string("parse-float", s)
    if not _FLOAT_TEXT.fullmatch(text):
        return None
    try:
        return float(text)
    except (ValueError, OverflowError):
        return None


@builtin("int")
def to_int(x: Any) -> int:
    """An integer from a number (truncated toward zero), a boolean (1 or 0) or a string."""
    kind = type(x)
    if kind is int:
        return x
    if kind is bool:
        return 1 if x else 0
    if kind is float:
        if math.isnan(x) or math.isinf(x):
            raise RtfsValueError(f"int of {to_readable(x)}: not a finite number")
        return math.trunc(x)
    if kind is str:
        parsed = parse_int(x)
        if parsed is None:
            raise RtfsValueError(f"int: {preview(x, 40)} is not an integer")
        return parsed
    raise RtfsTypeError(f"int expects a number, boolean or string, got {type_name(x)}")


@builtin("float")
def to_float(x: Any) -> float:
    """A float from a number, a boolean (1.0 or 0.0) or a string."""
    kind = type(x)
    if kind is float:
        return x
    if kind is bool:
        return 1.0 if x else 0.0
    if kind is int:
        try:
            return float(x)
        except OverflowError as err:
            raise RtfsValueError("float: integer too large for a float") from err
    if kind is str:
        parsed = parse_float(x)
        if parsed is None:
            raise RtfsValueError(f"float: {preview(x, 40)} is not a number")
        return parsed
    raise RtfsTypeError(f"float expects a number, boolean or string, got {type_name(x)}")


@builtin("length")
def length(x: Any) -> int:
    """The length of a string, or the number of items of a collection."""
    if type(x) is str:
        return len(x)
    return count(x)


# -- names -------------------------------------------------------------------------------------
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
