"""The refinement predicates of `[:and T pred ...]` types (chapter 13): `[:> 0]`,
`[:min-length 3]`, `[:matches-regex "..."]`, `[:in-range lo hi]`, `[:non-empty]`,
`[:has-key :k]` ... Each builder checks its arguments and returns the test it stands for."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from rtfs.errors import RtfsSyntaxError
from rtfs.printer import preview
from rtfs.values import Keyword, Map, RList, rtfs_equal


class TypeExpressionError(RtfsSyntaxError):
    """A type expression that does not parse (raised without a position; the compiler adds
    the annotation's)."""


def bad(message: str) -> TypeExpressionError:
    return TypeExpressionError(message)


# -- the predicates of [:and T pred ...] -----------------------------------------------------------
def _number_arg(datum: tuple) -> Any:
    if len(datum) != 2 or type(datum[1]) not in (int, float):
        raise bad(f"{preview(datum, 40)} takes one number")
    return datum[1]


def _size_arg(datum: tuple) -> int:
    if len(datum) != 2 or type(datum[1]) is not int or datum[1] < 0:
        raise bad(f"{preview(datum, 40)} takes one size (an integer >= 0)")
    return datum[1]


def _is_number(v: Any) -> bool:
    return type(v) in (int, float) and not (type(v) is float and math.isnan(v))


def _length(v: Any) -> int:
    if type(v) in (str, tuple, RList, frozenset) or isinstance(v, Map):
        return len(v)
    raise TypeError("no length")


def _compare(op: Callable[[Any, Any], bool]) -> Callable[[tuple], Callable[[Any], bool]]:
    def build(datum: tuple) -> Callable[[Any], bool]:
        bound = _number_arg(datum)
        return lambda v: _is_number(v) and op(v, bound)
    return build


def _equality(negate: bool) -> Callable[[tuple], Callable[[Any], bool]]:
    def build(datum: tuple) -> Callable[[Any], bool]:
        if len(datum) != 2:
            raise bad(f"{preview(datum, 40)} takes one value")
        return lambda v: rtfs_equal(v, datum[1]) != negate
    return build


def _sized(op: Callable[[int, int], bool], measure: Callable[[Any], int]
           ) -> Callable[[tuple], Callable[[Any], bool]]:
    def build(datum: tuple) -> Callable[[Any], bool]:
        bound = _size_arg(datum)
        return lambda v: op(measure(v), bound)
    return build


def _regex(datum: tuple) -> Callable[[Any], bool]:
    if len(datum) != 2 or type(datum[1]) is not str:
        raise bad(f"{preview(datum, 40)} takes one pattern string")
    try:
        pattern = re.compile(datum[1])
    except re.error as err:
        raise bad(f"invalid regular expression in {preview(datum, 40)}: {err}") from err
    return lambda v: type(v) is str and pattern.search(v) is not None


def _in_range(datum: tuple) -> Callable[[Any], bool]:
    if len(datum) != 3 or not all(type(b) in (int, float) for b in datum[1:]):
        raise bad(f"{preview(datum, 40)} takes a lower and an upper bound")
    low, high = datum[1], datum[2]
    return lambda v: _is_number(v) and low <= v <= high


def _count_of(v: Any) -> int:
    if type(v) in (tuple, RList, frozenset) or isinstance(v, Map):
        return len(v)
    raise TypeError("not a collection")


def _non_empty(datum: tuple) -> Callable[[Any], bool]:
    if len(datum) != 1:
        raise bad(f"{preview(datum, 40)} takes no argument")
    return lambda v: _length(v) > 0


def _has_key(datum: tuple) -> Callable[[Any], bool]:
    if len(datum) != 2:
        raise bad(f"{preview(datum, 40)} takes one key")
    return lambda v: isinstance(v, Map) and datum[1] in v


def _required_keys(datum: tuple) -> Callable[[Any], bool]:
    if len(datum) != 2 or type(datum[1]) is not tuple:
        raise bad(f"{preview(datum, 40)} takes a vector of keys")
    return lambda v: isinstance(v, Map) and all(k in v for k in datum[1])


PREDICATES: Mapping[str, Callable[[tuple], Callable[[Any], bool]]] = {
    ">": _compare(lambda a, b: a > b), ">=": _compare(lambda a, b: a >= b),
    "<": _compare(lambda a, b: a < b), "<=": _compare(lambda a, b: a <= b),
    "=": _equality(False), "!=": _equality(True),
    "min-length": _sized(lambda n, b: n >= b, _length),
    "max-length": _sized(lambda n, b: n <= b, _length),
    "length": _sized(lambda n, b: n == b, _length),
    "matches-regex": _regex, "in-range": _in_range,
    "min-count": _sized(lambda n, b: n >= b, _count_of),
    "max-count": _sized(lambda n, b: n <= b, _count_of),
    "count": _sized(lambda n, b: n == b, _count_of),
    "non-empty": _non_empty, "has-key": _has_key, "required-keys": _required_keys,
}


def is_predicate(datum: Any) -> bool:
    return type(datum) is tuple and bool(datum) and type(datum[0]) is Keyword and \
        datum[0].name in PREDICATES
