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

Map keys and set members compare as RTFS `=` does: `(= 1 1.0)` but not `(= 1 true)`, where
Python has `1 == True == 1.0`. A key that holds a boolean anywhere inside (or is nested deeper
than Python's hash can safely follow) is stored boxed in a `KeyBox`, whose hash and equality
are RTFS's; every other key is stored as itself, so ordinary maps (keyword, string, number
keys) stay plain dicts at full speed. A map holding a boxed key is a `BoxedMap`, whose
iteration gives the keys back unboxed. Sets hold boxed members the same way; iterate them
with `set_items`. Build maps with `Map(...)` (which boxes) and sets with `make_set`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Self


class _Interned:
    """A name interned per class, so that equality is identity and hashing is cheap."""

    __slots__ = ("_hash", "name")
    name: str
    _hash: int
    _table: ClassVar[dict[str, Any]]
    _lock = threading.Lock()

    def __new__(cls, name: str) -> Self:
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
    _table: ClassVar[dict[str, Any]] = {}

    def __repr__(self) -> str:
        return ":" + self.name


class Symbol(_Interned):
    """A symbol such as `x` or `ns/name`, as a quoted value."""

    __slots__ = ()
    _table: ClassVar[dict[str, Any]] = {}

    def __repr__(self) -> str:
        return self.name


class RList(tuple):
    """A list value, as produced by quoting `(a b c)`."""

    __slots__ = ()


class Map(dict):
    """An RTFS map: a dict whose keys compare as RTFS `=` (see the module docstring).

    Hashable, so that maps can be map keys and set members; never mutated after
    construction (the stdlib builds a new map with `map_assoc`, `map_dissoc`, ...).
    `Map(pairs_or_mapping)` boxes the keys that need it.
    """

    __slots__ = ("_hash",)
    _hash: int

    def __init__(self, source: Any = (), /) -> None:
        if isinstance(source, Map):  # a copy: the keys are stored as they need to be already
            if isinstance(source, BoxedMap):
                dict.update(self, dict.items(source))  # stored (boxed) keys, not the view
                if type(self) is Map:
                    self.__class__ = BoxedMap
            else:
                dict.update(self, source)
            return
        if isinstance(source, dict):
            kinds = set(map(type, source))
        else:
            source = source if type(source) is list else list(source)
            kinds = set(map(type, map(_first, source)))
        if kinds <= _PLAIN_KINDS:
            dict.update(self, source)
            return
        if kinds <= _STORED_KINDS:  # keys that were boxed already (copied from a map)
            dict.update(self, source)
        else:
            pairs = source.items() if isinstance(source, dict) else source
            for key, value in pairs:
                dict.__setitem__(self, map_key(key), value)
        if type(self) is Map and any(type(k) is KeyBox for k in dict.__iter__(self)):
            self.__class__ = BoxedMap

    def get(self, key: Any, default: Any = None) -> Any:
        return dict.get(self, key if type(key) in _PLAIN_KINDS else map_key(key), default)

    def __getitem__(self, key: Any) -> Any:
        return dict.__getitem__(self, key if type(key) in _PLAIN_KINDS else map_key(key))

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key if type(key) in _PLAIN_KINDS else map_key(key))

    def __hash__(self) -> int:  # type: ignore[override]
        try:
            return self._hash
        except AttributeError:
            self._hash = rtfs_hash(self)
            return self._hash

    def __reduce__(self) -> tuple[Any, ...]:
        return (Map, (list(self.items()),))


class BoxedMap(Map):
    """A map holding at least one boxed key; iterating it gives the keys unboxed."""

    __slots__ = ()

    def __iter__(self) -> Any:
        return (unbox(k) for k in dict.__iter__(self))

    def keys(self) -> Any:  # type: ignore[override]
        return [unbox(k) for k in dict.__iter__(self)]

    def items(self) -> Any:  # type: ignore[override]
        return [(unbox(k), v) for k, v in dict.items(self)]

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in self.items()) + "}"


class KeyBox:
    """A map key or set member stored under RTFS equality and hashing (see module docstring)."""

    __slots__ = ("_hash", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self._hash = rtfs_hash(value)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return type(other) is KeyBox and rtfs_equal(self.value, other.value)

    def __repr__(self) -> str:
        return f"KeyBox({self.value!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (KeyBox, (self.value,))


def _first(pair: Any) -> Any:
    return pair[0]


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
    wraps: tuple[Any, ...] = ()
    """The function values a built-at-run-time function calls (`partial`, `comp`): it carries
    their names, so a wrapper of a sensitive function is sensitive too."""

    def __repr__(self) -> str:
        return f"#<builtin {self.name}>"


@dataclass(eq=False, slots=True)
class Closure(Function):
    """A compiled RTFS function and the cells it captured."""

    code: Any  # rtfs.bytecode.Code
    cells: tuple[Cell, ...] = ()
    name: str = field(default="")
    aliases: frozenset[str] = frozenset()
    """Every global name this function value was `def`ined under (set by the VM)."""

    @property
    def hint(self) -> DelegationHint | None:
        return self.code.hint

    def __repr__(self) -> str:
        return f"#<fn {self.name or self.code.name}>"


def own_names(fn: Any, _depth: int = 0) -> frozenset[str]:
    """The names a function value answers to wherever it is called from: its `defn` name and
    every global it was `def`ined under; for `partial`/`comp` values, those of what they wrap.
    Policy (sensitivity, hints) follows these, not the name written at a call site."""
    if type(fn) is Closure:
        names = fn.aliases | {fn.code.name} if fn.code.name else fn.aliases
        return names | {fn.name} if fn.name else names
    if type(fn) is Builtin and fn.wraps and _depth < 64:
        return frozenset().union(*(own_names(w, _depth + 1) for w in fn.wraps))
    return frozenset()


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
    if ta is tb and ta in _SIMPLE:
        return bool(a == b)
    if (ta is bool) or (tb is bool):
        return False
    if ta in _NUMERIC and tb in _NUMERIC:
        return bool(a == b)
    if a is b:  # the same collection (also spares deep values a long walk)
        return True
    if ta in _SEQUENTIAL and tb in _SEQUENTIAL:
        return len(a) == len(b) and all(rtfs_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return _maps_equal(a, b)
    if ta is frozenset and tb is frozenset:
        return a == b  # members are stored boxed where Python's equality would differ
    if ta is KeyBox or tb is KeyBox:
        return rtfs_equal(unbox(a), unbox(b))
    return ta is tb and bool(a == b)


_COMPOSITE = frozenset({tuple, RList, Map, frozenset})
_SIMPLE = frozenset({type(None), bool, int, float, str, Keyword, Symbol, TaggedLiteral, Closure,
                     Builtin})
_NUMERIC = frozenset({int, float})
_SEQUENTIAL = frozenset({tuple, RList})


def _maps_equal(a: dict, b: dict) -> bool:
    if len(a) != len(b):
        return False
    for key, value in dict.items(a):  # stored keys: boxed in both maps alike
        other = dict.get(b, key, UNSET)
        if other is UNSET or not rtfs_equal(value, other):
            return False
    return True


# -- keys under RTFS equality ---------------------------------------------------------------
_MAX_PLAIN_DEPTH = 48  # deeper keys are boxed: CPython's tuple hash recurses in C unguarded
_HASH_DEPTH = 24  # rtfs_hash looks no deeper (equal values still hash equally)
_TRUE_HASH, _FALSE_HASH = hash(("rtfs-bool", True)), hash(("rtfs-bool", False))


def rtfs_hash(value: Any, depth: int = 0) -> int:
    """A hash consistent with `rtfs_equal`: 1 and 1.0 alike, true unlike 1, vectors like
    lists, maps and sets independent of order."""
    kind = type(value)
    if kind is bool:
        return _TRUE_HASH if value else _FALSE_HASH
    if kind is KeyBox:
        return value._hash
    if kind not in _COMPOSITE and not isinstance(value, (tuple, dict, frozenset)):
        return hash(value)
    if depth >= _HASH_DEPTH:
        return 0x5EED
    if kind is tuple or kind is RList:
        return hash(("rtfs-seq", *(rtfs_hash(v, depth + 1) for v in value)))
    if kind is frozenset:
        return hash(("rtfs-set", sum(rtfs_hash(v, depth + 1) for v in value) & 0xFFFFFFFFFFFF))
    if isinstance(value, dict):
        total = sum(hash((rtfs_hash(k, depth + 1), rtfs_hash(v, depth + 1)))
                    for k, v in dict.items(value))
        return hash(("rtfs-map", total & 0xFFFFFFFFFFFF))
    return hash(value)


def map_key(key: Any) -> Any:
    """`key` as stored in a map or set: itself, or boxed when it holds a boolean or is deep."""
    kind = type(key)
    if kind in _PLAIN_KINDS or kind is KeyBox:
        return key
    if kind is bool:
        return _TRUE_BOX if key else _FALSE_BOX
    if _needs_box(key):
        return KeyBox(key)
    return key


def unbox(key: Any) -> Any:
    """A stored key or set member back as the RTFS value it stands for."""
    return key.value if type(key) is KeyBox else key


def _needs_box(value: Any) -> bool:
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind in _PLAIN_KINDS:
            continue
        if kind is bool or kind is KeyBox or depth >= _MAX_PLAIN_DEPTH:
            return True
        if kind is tuple or kind is RList or kind is frozenset:
            if not _PLAIN_KINDS.issuperset(map(type, item)):
                stack.extend((x, depth + 1) for x in item)
        elif isinstance(item, dict):
            stack.extend((x, depth + 1) for pair in dict.items(item) for x in pair)
    return False


def make_set(items: Any) -> frozenset:
    """An RTFS set of `items` (members that need it are boxed)."""
    items = items if type(items) in (list, tuple) else list(items)
    if _PLAIN_KINDS.issuperset(map(type, items)):
        return frozenset(items)
    return frozenset(map(map_key, items))


def set_items(members: frozenset) -> Any:
    """The members of an RTFS set, unboxed."""
    if KeyBox in set(map(type, members)):
        return [unbox(m) for m in members]
    return members


def set_contains(members: frozenset, value: Any) -> bool:
    return (value if type(value) in _PLAIN_KINDS else map_key(value)) in members


def map_from_lists(keys: list[Any], values: list[Any]) -> Map:
    """A map of `keys[i]` to `values[i]`, without a list of pairs in between (the reader
    builds large constant maps this way)."""
    if _PLAIN_KINDS.issuperset(map(type, keys)):
        result = Map()
        dict.update(result, zip(keys, values))
        return result
    return Map(list(zip(keys, values)))


def map_assoc(base: Map | None, pairs: Any) -> Map:
    """A new map: `base` (nil for none) with `pairs` added."""
    result = Map(base) if base else Map()
    boxed = False
    for key, value in pairs:
        stored = key if type(key) in _PLAIN_KINDS else map_key(key)
        boxed = boxed or type(stored) is KeyBox
        dict.__setitem__(result, stored, value)
    if boxed and type(result) is Map:
        result.__class__ = BoxedMap
    return result


def map_dissoc(base: Map, keys: Any) -> Map:
    """A new map: `base` without `keys`."""
    result = Map(base)
    for key in keys:
        dict.pop(result, key if type(key) in _PLAIN_KINDS else map_key(key), None)
    return result


_TRUE_BOX, _FALSE_BOX = KeyBox(True), KeyBox(False)
_PLAIN_KINDS = frozenset({type(None), str, int, float, Keyword, Symbol, TaggedLiteral, Closure,
                          Builtin})
_STORED_KINDS = _PLAIN_KINDS | {KeyBox}
EMPTY_MAP = Map()
