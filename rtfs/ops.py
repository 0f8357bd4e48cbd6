"""Operations the VM and the standard library share: lookup, destructuring, error values."""

from __future__ import annotations

from typing import Any

from rtfs.errors import (
    CapabilityError,
    HostError,
    InternalError,
    RtfsError,
    RtfsRecursionError,
    RtfsRuntimeError,
    RtfsTypeError,
    RtfsValidationError,
    UserError,
)
from rtfs.values import Keyword, Map, RList, map_dissoc, map_key, type_name

_SEQUENTIAL = (tuple, RList, str)
_DESTRUCTURABLE = (tuple, RList)  # strings are not: (let [[a b] "ab"] ...) is a TypeError


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
    if type(seq) in _DESTRUCTURABLE:
        return seq[index] if index < len(seq) else None
    raise RtfsTypeError(f"cannot destructure a {type_name(seq)} as a vector")


def rest_from(seq: Any, index: int) -> tuple[Any, ...] | None:
    """The items from `index` on, as a vector; nil when there are none (as `& rest`)."""
    if seq is None:
        return None
    if type(seq) in _DESTRUCTURABLE:
        rest = tuple(seq[index:])
        return rest or None
    raise RtfsTypeError(f"cannot destructure a {type_name(seq)} as a vector")


def map_rest(subject: Any, keys: tuple[Any, ...]) -> Map | None:
    """`{... & rest}`: the entries of a map whose keys the pattern did not name (nil when
    there are none, or for nil)."""
    if subject is None:
        return None
    if not isinstance(subject, Map):
        raise RtfsTypeError(f"cannot destructure a {type_name(subject)} as a map")
    rest = map_dissoc(subject, keys)
    return rest or None


class ErrorValue(Map):
    """What `(catch Kind e ...)` binds `e` to: a map of the error's :type, :message and
    position (and :value for a thrown value), that still knows the error it stands for."""

    __slots__ = ("error",)
    error: RtfsError

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
        for attribute in ("data", "context"):  # what (error msg data) and with-context add
            extra = getattr(error, attribute, None)
            if extra is not None:
                fields[Keyword(attribute)] = extra
        value = cls(fields)
        value.error = error
        return value

    def __reduce__(self) -> tuple[Any, ...]:
        return (ErrorValue.of, (self.error,))


def error_matches(error: RtfsError, kind: str) -> bool:
    """Whether a `catch` of `kind` ("*" for any) takes `error`. Runaway recursion and
    internal faults are only caught by naming them.

    The specification's three families: `RuntimeError` (every evaluation error: type, arity,
    arithmetic, unbound symbol, index, value, match, and errors signalled with `error`),
    `HostError` (capabilities and host functions) and `ValidationError` (type annotations).
    Other names match an error's kind or class name, with or without "Error"
    (`:division-by-zero` is `DivisionByZero`, `:unbound-symbol` `UnboundSymbol`).
    """
    if kind == "*":
        return not isinstance(error, (RtfsRecursionError, InternalError))
    family = _FAMILIES.get(kind)
    if family is not None:
        return family(error)
    names = {kind, kind + "Error", _ALIASES.get(kind, kind)}
    return any(getattr(cls, "kind", None) in names or cls.__name__ in names
               for cls in type(error).__mro__)


def _is_runtime_error(error: RtfsError) -> bool:
    if isinstance(error, RtfsRuntimeError):
        return True
    return not isinstance(error, (HostError, CapabilityError, RtfsValidationError, UserError,
                                  RtfsRecursionError, InternalError))


_FAMILIES = {"RuntimeError": _is_runtime_error,
             "HostError": lambda e: isinstance(e, (HostError, CapabilityError))}
_ALIASES = {"UndefinedSymbol": "UnboundSymbol", "UndefinedSymbolError": "UnboundSymbol",
            "ZeroDivision": "DivisionByZeroError", "Timeout": "DeadlineExceeded"}
