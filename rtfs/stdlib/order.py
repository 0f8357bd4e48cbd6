"""Ordering: `compare`, `sort`, `sort-by`."""

from __future__ import annotations

import functools
import math
from typing import Any

from rtfs.errors import RtfsTypeError
from rtfs.stdlib import builtin
from rtfs.stdlib.seqs import as_seq
from rtfs.values import Keyword, RList, Symbol, truthy, type_name

_ABSENT = object()


def compare(a: Any, b: Any) -> int:
    """Natural order: nil first; numbers, strings, keywords, symbols, booleans among their own
    kind; vectors by length, then item by item."""
    if a is None or b is None:
        return (a is not None) - (b is not None)
    ka, kb = _order_kind(a), _order_kind(b)
    if ka != kb:
        raise RtfsTypeError(f"cannot compare {type_name(a)} with {type_name(b)}")
    if ka == "vector":
        if len(a) != len(b):
            return (len(a) > len(b)) - (len(a) < len(b))
        for x, y in zip(a, b):
            c = compare(x, y)
            if c:
                return c
        return 0
    if ka in ("keyword", "symbol"):
        a, b = a.name, b.name
    return (a > b) - (a < b)


def _order_kind(x: Any) -> str:
    kind = type(x)
    if kind in (int, float):
        return "number"
    if kind is bool:
        return "bool"
    if kind is str:
        return "string"
    if kind is Keyword:
        return "keyword"
    if kind is Symbol:
        return "symbol"
    if kind in (tuple, RList):
        return "vector"
    raise RtfsTypeError(f"{type_name(x)} values have no natural order")


builtin("compare")(lambda a, b: compare(a, b))


def _comparator(ex: Any, fn: Any) -> Any:
    """A sort key from an RTFS comparator: a boolean `less than` or a number like compare's."""

    def cmp(a: Any, b: Any) -> int:
        result = ex.call(fn, [a, b])
        if type(result) is bool or result is None:
            if truthy(result):
                return -1
            return 1 if truthy(ex.call(fn, [b, a])) else 0
        if type(result) in (int, float) and not math.isnan(result):
            return (result > 0) - (result < 0)
        raise RtfsTypeError(f"a sort comparator returns a boolean or a number, "
                            f"got {type_name(result)}")

    return functools.cmp_to_key(cmp)


@builtin("sort", needs_vm=True)
def sort(ex: Any, comparator_or_coll: Any, coll: Any = _ABSENT) -> tuple[Any, ...]:
    if coll is _ABSENT:
        return tuple(sorted(as_seq("sort", comparator_or_coll), key=functools.cmp_to_key(compare)))
    return tuple(sorted(as_seq("sort", coll), key=_comparator(ex, comparator_or_coll)))


@builtin("sort-by", needs_vm=True)
def sort_by(ex: Any, keyfn: Any, coll: Any) -> tuple[Any, ...]:
    items = as_seq("sort-by", coll)
    keyed: list[tuple[Any, Any]] = [(ex.call(keyfn, [x]), x) for x in items]

    def by_key(a: tuple[Any, Any], b: tuple[Any, Any]) -> int:
        return compare(a[0], b[0])

    return tuple(x for _, x in sorted(keyed, key=functools.cmp_to_key(by_key)))
