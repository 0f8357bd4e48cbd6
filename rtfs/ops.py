"""Operations the VM and the standard library share: lookup, destructuring, error values."""

from __future__ import annotations

from typing import Any

from rtfs.errors import InternalError, RtfsError, RtfsRecursionError, RtfsTypeError, UserError
from rtfs.values import Keyword, Map, RList, map_key, type_name

_SEQUENTIAL = (tuple, RList, str)


def get_or(coll: Any, key: Any, default: Any) -> Any:
    """`(get coll key default)`: maps by key, vectors and strings by index, sets by member."""
    kind = type(key)
    if isinstance(coll, dict):
        if kind is Keyword or kind is str:  # the common case, no boxing to consider
            return dict.get(coll, key, default)
        return dict.get(coll, map_key(key), default)
    ckind = type(coll)
    if ckind in _SEQUENTIAL:
        if kind is int and 0 <= key < len(coll):
            return coll[key]
        return default
    if ckind is frozenset:
        return key if map_key(key) in coll else default
    return default


def nth_or_nil(seq: Any, index: int) -> Any:
    """Item `index` of a sequence for destructuring; nil past the end or for nil."""
    if seq is None:
        return None
    if type(seq) in _SEQUENTIAL:
        return seq[index] if index < len(seq) else None
    raise RtfsTypeError(f"cannot destructure a {type_name(seq)} as a sequence")


def rest_from(seq: Any, index: int) -> tuple[Any, ...] | None:
    """The items from `index` on, as a vector; nil when there are none (as `& rest`)."""
    if seq is None:
        return None
    if type(seq) in _SEQUENTIAL:
        rest = tuple(seq[index:])
        return rest or None
    raise RtfsTypeError(f"cannot destructure a {type_name(seq)} as a sequence")


class ErrorValue(Map):
    """What `(catch Kind e ...)` binds `e` to: a map of the error's :type, :message and
    position (and :value for a thrown value), that still knows the error it stands for."""

    __slots__ = ("error",)

    @classmethod
    def of(cls, error: RtfsError) -> ErrorValue:
        fields: dict[Any, Any] = {
            Keyword("type"): error.kind,
            Keyword("message"): error.message,
            Keyword("line"): error.line,
            Keyword("col"): error.col,
        }
        if isinstance(error, UserError):
            fields[Keyword("value")] = error.value
        value = cls(fields)
        value.error = error
        return value

    def __reduce__(self) -> tuple[Any, ...]:
        return (ErrorValue.of, (self.error,))


def error_matches(error: RtfsError, kind: str) -> bool:
    """Whether a `catch` of `kind` ("*" for any) takes `error`. Runaway recursion and
    internal faults are only caught by naming them."""
    if kind == "*":
        return not isinstance(error, (RtfsRecursionError, InternalError))
    return any(getattr(cls, "kind", None) == kind or cls.__name__ == kind
               for cls in type(error).__mro__)
