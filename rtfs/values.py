"""RTFS runtime values and their Python representation.

=========  ================================================
RTFS       Python
=========  ================================================
nil        None
true       True (booleans are never equal to numbers in RTFS)
42, 2**70  int
1.5        float
"s"        str
:kw        Keyword (interned)
sym        Symbol (interned)
[1 2]      tuple (a vector)
'(1 2)     RList, a tuple subclass
{:a 1}     Map, a hashable dict subclass treated as immutable
#{1 2}     frozenset
fn         Closure or Builtin
=========  ================================================

Known limit: Python hashes `True` like `1` and `False` like `0`, so a map literal holding
both `1` and `true` as keys keeps one entry. Lookups (`get`, `contains?`) do keep them apart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class _Interned:
    """A name interned per class, so that equality is identity and hashing is cheap."""

    __slots__ = ("_hash", "name")
    name: str
    _hash: int
    _table: dict[str, _Interned]
    _lock = threading.Lock()

    def __new__(cls, name: str) -> _Interned:
        found = cls._table.get(name)
        if found is not None:
            return found
        with cls._lock:
            found = cls._table.get(name)
            if found is None:
                found = object.__new__(cls)
                found.name = name
                found._hash = hash((cls.__name__, name))
                cls._table[name] = found
        return found

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (type(self), (self.name,))

    def __copy__(self) -> _Interned:
        return self

    def __deepcopy__(self, memo: dict) -> _Interned:
        return self


class Keyword(_Interned):
    """A keyword such as `:a` or `:ns/a`; `name` excludes the colon."""

    __slots__ = ()
    _table: dict[str, Keyword] = {}

    def __repr__(self) -> str:
        return ":" + self.name


class Symbol(_Interned):
    """A symbol such as `x` or `ns/name`, as a quoted value."""

    __slots__ = ()
    _table: dict[str, Symbol] = {}

    def __repr__(self) -> str:
        return self.name


class RList(tuple):
    """A list value, as produced by quoting `(a b c)`."""

    __slots__ = ()


class Map(dict):
    """An RTFS map. Hashable so that maps can be map keys and set members; never mutated
    after construction by RTFS code (the stdlib always builds a new one)."""

    __slots__ = ("_hash",)

    def __hash__(self) -> int:
        try:
            return self._hash
        except AttributeError:
            self._hash = hash(frozenset(self.items()))
            return self._hash


EMPTY_MAP = Map()


@dataclass(frozen=True, slots=True)
class TaggedLiteral:
    """The RTFS 2.0 literals that have no Python counterpart: kept as their text."""

    tag: str  # "uuid", "timestamp" or "resource"
    text: str


class HintKind(StrEnum):
    """Where a `^:delegation` hint asks a function to run."""

    LOCAL = "local"
    LOCAL_MODEL = "local-model"
    REMOTE = "remote"
    TARGET = "target"  # a configuration target string, resolved by the engine


@dataclass(frozen=True, slots=True)
class DelegationHint:
    """A function's delegation hint, in either notation.

    `^:delegation :remote "gpt4o"` -> (REMOTE, "gpt4o"); `^:delegation :local` -> (LOCAL, None);
    `^:delegation {:target "remote-openai"}` -> (TARGET, "remote-openai"), with any other keys
    of that map kept in `extra` as sorted (name, value) pairs.
    """

    kind: HintKind
    target: str | None = None
    extra: tuple[tuple[str, Any], ...] = ()

    def to_list(self) -> list[Any]:
        """Plain msgpack-able form, used in hashes and bytecode."""
        return [str(self.kind), self.target, [[k, v] for k, v in self.extra]]


class Cell:
    """A mutable box for a variable that closures capture."""

    __slots__ = ("value",)

    def __init__(self, value: Any = None) -> None:
        self.value = value


UNSET = object()  # the value of a cell or slot whose binding has not run yet


class Function:
    """Base of everything RTFS can call."""

    __slots__ = ()
    name: str


@dataclass(eq=False, slots=True)
class Builtin(Function):
    """A function implemented in Python.

    `pure` builtins never have side effects or consult the outside world; `needs_vm` ones
    receive the calling VM thread state as their first argument (to call RTFS functions back).
    """

    name: str
    fn: Callable[..., Any]
    min_args: int = 0
    max_args: int | None = None
    pure: bool = True
    needs_vm: bool = False

    def __repr__(self) -> str:
        return f"#<builtin {self.name}>"


@dataclass(eq=False, slots=True)
class Closure(Function):
    """A compiled RTFS function and the cells it captured."""

    code: Any  # rtfs.bytecode.Code
    cells: tuple[Cell, ...] = ()
    name: str = field(default="")

    @property
    def hint(self) -> DelegationHint | None:
        return self.code.hint

    def __repr__(self) -> str:
        return f"#<fn {self.name or self.code.name}>"


def truthy(value: Any) -> bool:
    """Only nil and false are false."""
    return value is not None and value is not False


def is_vector(value: Any) -> bool:
    return type(value) is tuple


def is_number(value: Any) -> bool:
    return (type(value) is int) or (type(value) is float)


def type_name(value: Any) -> str:
    """The RTFS name of a value's type, for messages and type signatures."""
    return _TYPE_NAMES.get(type(value)) or _slow_type_name(value)


_TYPE_NAMES: dict[type, str] = {
    type(None): "nil",
    bool: "bool",
    int: "int",
    float: "float",
    str: "string",
    Keyword: "keyword",
    Symbol: "symbol",
    tuple: "vector",
    RList: "list",
    Map: "map",
    frozenset: "set",
    Closure: "function",
    Builtin: "function",
}


def _slow_type_name(value: Any) -> str:
    if isinstance(value, TaggedLiteral):
        return value.tag
    if isinstance(value, dict):
        return "map"
    if isinstance(value, Function):
        return "function"
    return type(value).__name__


def type_signature(value: Any) -> str:
    """The canonical type signature of one value, as used for argument fingerprints.

    Shallow on purpose: constant time whatever the size of a collection, so that computing a
    call's fingerprint never costs more than the call it routes.
    """
    return type_name(value)


def rtfs_equal(a: Any, b: Any) -> bool:
    """RTFS `=`: numbers compare by value across int and float, booleans never equal numbers,
    collections compare element-wise, maps and sets ignore order."""
    ta, tb = type(a), type(b)
    if ta is tb and ta not in _COMPOSITE:
        return a == b
    if (ta is bool) or (tb is bool):
        return False
    if ta in _NUMERIC and tb in _NUMERIC:
        return a == b
    if ta in _SEQUENTIAL and tb in _SEQUENTIAL:
        return len(a) == len(b) and all(rtfs_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return _maps_equal(a, b)
    if ta is frozenset and tb is frozenset:
        return a == b
    return False


_COMPOSITE = frozenset({tuple, RList, Map, frozenset})
_NUMERIC = frozenset({int, float})
_SEQUENTIAL = frozenset({tuple, RList})


def _maps_equal(a: dict, b: dict) -> bool:
    if len(a) != len(b):
        return False
    for key, value in a.items():
        other = b.get(key, UNSET)
        if other is UNSET or not rtfs_equal(value, other):
            return False
    return True


def make_set(items: Any) -> frozenset:
    """An RTFS set of `items`."""
    return frozenset(items)
