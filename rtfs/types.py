"""Type expressions (specification chapter 13), checked at run time.

Annotations are checked where a value crosses a boundary: the arguments and result of a
function, a `let` or `def` binding, each item of a typed `& rest` parameter. A mismatch raises
`RtfsValidationError` (a TypeError) naming what was expected and what came, with the position
of the annotation.

Accepted forms (as written in source, i.e. as RTFS data):

- primitives, as keywords or symbols, lower- or capitalised: `:int` `int` `Integer`, `:float`,
  `:number` (int or float), `:string`, `:bool`, `:nil`, `:keyword`, `:symbol`, `:any`,
  `:never`, `:vector` `:list` `:map` `:set` (any such collection), `:fn`, `:uuid`,
  `:timestamp`, `:resource`; a trailing `?` makes any of them optional (`:string?`);
- `[:vector T]` `[:list T]` `[:set T]` `[:tuple T ...]` `[:array T [dims]]`;
- records `[:map [:k T] [:k T ?] ... [:* T]]` (alias `:record`; `{:k T ...}` inside or on its
  own): required and optional keys, extra keys allowed (checked against `[:* T]` if given);
- dictionaries `[:map-of K V]` (alias `:dict`);
- `[:union T ...]` (`:or`, or the list form `(or T ...)`), `[:optional T]` (`:maybe`);
- `[:and T pred-or-type ...]` (or `(and ...)`), with the predicates `[:> v] [:>= v] [:< v]
  [:<= v] [:= v] [:!= v] [:min-length n] [:max-length n] [:length n] [:matches-regex "re"]
  [:in-range lo hi] [:min-count n] [:max-count n] [:count n] [:non-empty] [:has-key :k]
  [:required-keys [:k ...]]`;
- `[:enum v ...]`, `[:val v]`, `[:fn [P ... & R] Ret]` (`:=>`: any function: a function's
  parameter types cannot be checked without calling it), `[:resource name]`;
- any other name: a type alias defined with `deftype`/`defstruct`, looked up when the check
  runs (late bound, like functions; so aliases may be recursive). A name that is not defined
  anywhere is documentation only and accepts every value, as the specification's "custom
  type symbols" do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rtfs.printer import preview, to_readable
from rtfs.typepreds import PREDICATES, TypeExpressionError, is_predicate
from rtfs.typepreds import bad as _bad
from rtfs.values import (
    Builtin,
    Closure,
    Keyword,
    Map,
    RList,
    Symbol,
    TaggedLiteral,
    rtfs_equal,
    set_items,
    type_name,
)

__all__ = ["ALIAS_PREFIX", "ANY", "UNDEFINED", "Type", "TypeExpressionError", "parse",
           "parse_cached"]

ALIAS_PREFIX = "type "  # a type alias named N is the global "type N" (no symbol can name it)
UNDEFINED = object()  # what a strict lookup gives for an alias no one defined
MAX_CHECK_DEPTH = 256

Lookup = Callable[[str], Any]  # alias name -> its type expression (or None)


class Type:
    """A parsed type expression. `check` returns None when `value` belongs to the type, else
    a description of the first mismatch."""

    text: str

    def check(self, value: Any, lookup: Lookup, depth: int = 0) -> str | None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.text


def _got(value: Any) -> str:
    return f"got {type_name(value)} {preview(value, 60)}"


@dataclass(repr=False)
class Simple(Type):
    text: str
    test: Callable[[Any], bool]

    def check(self, value: Any, lookup: Lookup, depth: int = 0) -> str | None:
        return None if self.test(value) else f"expected {self.text}, {_got(value)}"


def _is_fn(value: Any) -> bool:
    return type(value) in (Closure, Builtin)


def _tagged(tag: str) -> Callable[[Any], bool]:
    return lambda v: type(v) is TaggedLiteral and v.tag == tag


_PRIMITIVES: dict[str, Simple] = {}
for _names, _test in (
    (("int", "integer", "Int", "Integer", "i64"), lambda v: type(v) is int),
    (("float", "Float", "double", "f64"), lambda v: type(v) is float),
    (("number", "Number", "num"), lambda v: type(v) in (int, float)),
    (("string", "String", "str"), lambda v: type(v) is str),
    (("bool", "boolean", "Bool", "Boolean"), lambda v: type(v) is bool),
    (("nil", "Nil", "null"), lambda v: v is None),
    (("keyword", "Keyword"), lambda v: type(v) is Keyword),
    (("symbol", "Symbol"), lambda v: type(v) is Symbol),
    (("any", "Any"), lambda v: True),
    (("never", "Never"), lambda v: False),
    (("vector", "Vector"), lambda v: type(v) is tuple),
    (("list", "List"), lambda v: type(v) is RList),
    (("map", "Map"), lambda v: isinstance(v, Map)),
    (("set", "Set"), lambda v: type(v) is frozenset),
    (("fn", "Fn", "function", "Function"), _is_fn),
    (("uuid", "Uuid", "UUID"), _tagged("uuid")),
    (("timestamp", "Timestamp"), _tagged("timestamp")),
    (("resource", "Resource"), _tagged("resource")),
):
    _canonical = Simple(":" + _names[0], _test)
    for _name in _names:
        _PRIMITIVES[_name] = _canonical
ANY = _PRIMITIVES["any"]
NIL = _PRIMITIVES["nil"]


@dataclass(repr=False)
class Named(Type):
    """A type alias, resolved when a value is checked."""

    text: str
    name: str

    def check(self, value: Any, lookup: Lookup, depth: int = 0) -> str | None:
        if depth > MAX_CHECK_DEPTH:
            return f"type {self.text} nested deeper than {MAX_CHECK_DEPTH}"
        datum = lookup(self.name)
        if datum is None:
            return None  # not defined: documentation only
        if datum is UNDEFINED:  # asked whether a value has a type no one defined: it has not
            return f"{self.text} is not a defined type"
        failure = parse_cached(datum).check(value, lookup, depth + 1)
        return None if failure is None else f"{self.text}: {failure}"


@dataclass(repr=False)
class Each(Type):
    """`[:vector T]`, `[:list T]`, `[:set T]`: a collection of one kind whose items are T."""

    text: str
    kind: str
    item: Type

    def check(self, value: Any, lookup: Lookup, depth: int = 0) -> str | None:
        if type(value) is not _KIND_TYPES[self.kind]:
            return f"expected {self.text}, {_got(value)}"
        items = set_items(value) if self.kind == "set" else value
        for index, item in enumerate(items):
            failure = self.item.check(item, lookup, depth + 1)
            if failure is not None:
                where = f"[{index}]" if self.kind != "set" else "a member"
                return f"at {where}: {failure}"
        return None


_KIND_TYPES = {"vector": tuple, "list": RList, "set": frozenset}


@dataclass(repr=False)
class TupleOf(Type):
    text: str
    items: list[Type]

    def check(self, value: Any, lookup: Lookup, depth: int = 0) -> str | None:
        if type(value) not in (tuple, RList) or len(value) != len(self.items):
            return f"expected {self.text}, {_got(value)}"
        for index, (item, kind) in enumerate(zip(value, self.items)):
            failure = kind.check(item, lookup, depth + 1)
            if failure is not None:
                return f"at [{index}]: {failure}"
        return None


@dataclass(repr=False)
class ArrayOf(Type):
    """`[:array T [d1 d2 ...]]`: nested vectors of T with the given dimensions (`?` any)."""

    text: str
    item: Type
    shape: list[int | None]

    def check(self, value: Any, lookup: Lookup, depth: int = 0) -> str | None:
        return self._check(value, lookup, depth, 0)

    def _check(self, value: Any, lookup: Lookup, depth: int, level: int) -> str | None:
        if level == len(self.shape) or not self.shape:
            if not self.shape and type(value) is tuple:
                return Each(self.text, "vector", self.item).check(value, lookup, depth)
            return self.item.check(value, lookup, depth + 1)
        size = self.shape[level]
        if type(value) is not tuple or (size is not None and len(value) != size):
            return f"expected {self.text} (dimension {level + 1}), {_got(value)}"
        for item in value:
            failure = self._check(item, lookup, depth + 1, level + 1)
            if failure is not None:
                return failure
        return None


@dataclass(repr=False)
class Record(Type):
    text: str
    fields: list[tuple[Any, Type, bool]]  # key, type, optional
    others: Type | None

    def check(self, value: Any, lookup: Lookup, depth: int = 0) -> str | None:
        if not isinstance(value, Map):
            return f"expected {self.text}, {_got(value)}"
        for key, kind, optional in self.fields:
            if key not in value:
                if optional:
                    continue
                return f"expected {self.text}, missing key {to_readable(key)}"
            failure = kind.check(value[key], lookup, depth + 1)
            if failure is not None:
                return f"at {to_readable(key)}: {failure}"
        if self.others is not None:
            named = {k for k, _, _ in self.fields}
            for key, item in value.items():
                if key not in named:
                    failure = self.others.check(item, lookup, depth + 1)
                    if failure is not None:
                        return f"at {preview(key, 40)}: {failure}"
        return None


@dataclass(repr=False)
class MapOf(Type):
    text: str
    key: Type
    value: Type

    def check(self, value: Any, lookup: Lookup, depth: int = 0) -> str | None:
        if not isinstance(value, Map):
            return f"expected {self.text}, {_got(value)}"
        for k, v in value.items():
            failure = self.key.check(k, lookup, depth + 1)
            if failure is not None:
                return f"a key of {self.text}: {failure}"
            failure = self.value.check(v, lookup, depth + 1)
            if failure is not None:
                return f"at {preview(k, 40)}: {failure}"
        return None


@dataclass(repr=False)
class Union(Type):
    text: str
    members: list[Type]

    def check(self, value: Any, lookup: Lookup, depth: int = 0) -> str | None:
        if any(m.check(value, lookup, depth + 1) is None for m in self.members):
            return None
        return f"expected {self.text}, {_got(value)}"


@dataclass(repr=False)
class Intersection(Type):
    text: str
    members: list[Type]

    def check(self, value: Any, lookup: Lookup, depth: int = 0) -> str | None:
        for member in self.members:
            failure = member.check(value, lookup, depth + 1)
            if failure is not None:
                return failure if isinstance(member, Predicate) or len(self.members) == 1 \
                    else f"{failure} (for {self.text})"
        return None


@dataclass(repr=False)
class OneOf(Type):
    """`[:enum v ...]` and `[:val v]`: one of these values, compared with `=`."""

    text: str
    values: tuple[Any, ...]

    def check(self, value: Any, lookup: Lookup, depth: int = 0) -> str | None:
        if any(rtfs_equal(value, v) for v in self.values):
            return None
        return f"expected {self.text}, {_got(value)}"


@dataclass(repr=False)
class Predicate(Type):
    text: str
    holds: Callable[[Any], bool]

    def check(self, value: Any, lookup: Lookup, depth: int = 0) -> str | None:
        try:
            ok = self.holds(value)
        except (TypeError, ValueError, OverflowError):  # e.g. (> "a" 0): does not hold
            ok = False
        return None if ok else f"{preview(value, 60)} fails {self.text}"


# -- parsing -----------------------------------------------------------------------------------
def parse(datum: Any) -> Type:
    """The type a type expression (RTFS data, as written) denotes; TypeExpressionError if it
    is not one."""
    return _parse(datum, 0)


_CACHE: dict[int, tuple[Any, Type]] = {}


def parse_cached(datum: Any) -> Type:
    """`parse`, remembered per datum object (constants live as long as their code)."""
    entry = _CACHE.get(id(datum))
    if entry is not None and entry[0] is datum:
        return entry[1]
    parsed = parse(datum)
    if len(_CACHE) > 4096:
        _CACHE.clear()
    _CACHE[id(datum)] = (datum, parsed)
    return parsed


def _parse(datum: Any, depth: int) -> Type:
    if depth > 64:
        raise _bad("type expression nested too deeply")
    kind = type(datum)
    if kind is Keyword or kind is Symbol:
        return _parse_name(datum)
    if kind is tuple:
        return _parse_vector(datum, depth)
    if kind is RList:
        return _parse_list(datum, depth)
    if isinstance(datum, Map):
        return _record(list(datum.items()), None, depth, to_readable(datum))
    raise _bad(f"not a type expression: {preview(datum, 60)}")


def _parse_name(datum: Keyword | Symbol) -> Type:
    name = datum.name
    found = _PRIMITIVES.get(name)
    if found is not None:
        return found
    if name.endswith("?") and len(name) > 1:
        inner = _parse_name(type(datum)(name[:-1]))
        return Union(to_readable(datum), [inner, NIL])
    return Named(to_readable(datum), name)


def _items_text(head: str, parts: list[Type]) -> str:
    return "[" + " ".join([head, *(p.text for p in parts)]) + "]"


def _parse_list(datum: RList, depth: int) -> Type:
    if not datum or type(datum[0]) is not Symbol or datum[0].name not in ("or", "and", "union"):
        raise _bad(f"not a type expression: {preview(datum, 60)} (a list type is "
                   "(or T ...) or (and T ...))")
    members = [_parse(item, depth + 1) for item in datum[1:]]
    if not members:
        raise _bad(f"{preview(datum, 60)} needs at least one type")
    text = "(" + " ".join([datum[0].name, *(m.text for m in members)]) + ")"
    if datum[0].name == "and":
        return Intersection(text, members)
    return Union(text, members)


def _parse_vector(datum: tuple, depth: int) -> Type:
    if not datum or type(datum[0]) is not Keyword:
        raise _bad(f"not a type expression: {preview(datum, 60)} (a vector type starts "
                   "with a keyword such as :vector, :map or :union)")
    head, args = datum[0].name, datum[1:]
    builder = _VECTOR_TYPES.get(head)
    if builder is None:
        if head in PREDICATES:
            raise _bad(f"{preview(datum, 60)} is a predicate: use it inside [:and T ...]")
        raise _bad(f"unknown type constructor :{head} in {preview(datum, 60)}")
    return builder(datum, args, depth)


def _count(datum: tuple, args: tuple, low: int, high: int | None = None) -> None:
    if len(args) < low or (high is not None and len(args) > high):
        wanted = str(low) if high == low else f"{low}+" if high is None else f"{low}-{high}"
        raise _bad(f"{preview(datum, 60)} takes {wanted} argument(s)")


def _each(kind: str) -> Callable[[tuple, tuple, int], Type]:
    def build(datum: tuple, args: tuple, depth: int) -> Type:
        _count(datum, args, 1, 1)
        item = _parse(args[0], depth + 1)
        return Each(_items_text(":" + kind, [item]), kind, item)
    return build


def _tuple(datum: tuple, args: tuple, depth: int) -> Type:
    items = [_parse(a, depth + 1) for a in args]
    return TupleOf(_items_text(":tuple", items), items)


def _array(datum: tuple, args: tuple, depth: int) -> Type:
    _count(datum, args, 1, 2)
    item = _parse(args[0], depth + 1)
    shape: list[int | None] = []
    if len(args) == 2:
        if type(args[1]) is not tuple:
            raise _bad(f"the shape of {preview(datum, 60)} is a vector of sizes")
        for size in args[1]:
            if type(size) is int and size >= 0:
                shape.append(size)
            elif type(size) is Symbol and size.name == "?":
                shape.append(None)
            else:
                raise _bad(f"a dimension is a size or ?, got {preview(size, 20)}")
    return ArrayOf(to_readable(datum), item, shape)


def _map(datum: tuple, args: tuple, depth: int) -> Type:
    entries: list[tuple[Any, Any]] = []
    optional: set[int] = set()
    others = None
    for arg in args:
        if isinstance(arg, Map):
            entries.extend(arg.items())
        elif type(arg) is tuple and len(arg) in (2, 3) and type(arg[0]) is Keyword:
            if arg[0].name == "*":
                others = _parse(arg[1], depth + 1)
                continue
            if len(arg) == 3 and not (type(arg[2]) is Symbol and arg[2].name == "?"):
                raise _bad(f"a record field is [:key T] or [:key T ?], got {preview(arg, 40)}")
            if len(arg) == 3:
                optional.add(len(entries))
            entries.append((arg[0], arg[1]))
        else:
            raise _bad(f"a record field is [:key T], [:key T ?], [:* T] or {{:key T}}, "
                       f"got {preview(arg, 40)}")
    return _record(entries, others, depth, to_readable(datum), optional)


def _record(entries: list[tuple[Any, Any]], others: Type | None, depth: int, text: str,
            optional: set[int] | None = None) -> Type:
    fields = []
    for index, (key, kind) in enumerate(entries):
        if type(key) not in (Keyword, str):
            raise _bad(f"a record field name is a keyword or a string, got {preview(key, 20)}")
        fields.append((key, _parse(kind, depth + 1), index in (optional or set())))
    return Record(text, fields, others)


def _map_of(datum: tuple, args: tuple, depth: int) -> Type:
    _count(datum, args, 2, 2)
    key, value = _parse(args[0], depth + 1), _parse(args[1], depth + 1)
    return MapOf(_items_text(":map-of", [key, value]), key, value)


def _union(datum: tuple, args: tuple, depth: int) -> Type:
    _count(datum, args, 1)
    members = [_parse(a, depth + 1) for a in args]
    return Union(_items_text(":union", members), members)


def _optional(datum: tuple, args: tuple, depth: int) -> Type:
    _count(datum, args, 1, 1)
    inner = _parse(args[0], depth + 1)
    return Union(_items_text(":optional", [inner]), [inner, NIL])


def _and(datum: tuple, args: tuple, depth: int) -> Type:
    _count(datum, args, 1)
    members = [_predicate(a) if is_predicate(a) else _parse(a, depth + 1) for a in args]
    return Intersection(_items_text(":and", members), members)


def _one_of(datum: tuple, args: tuple, depth: int) -> Type:
    if datum[0].name == "val":
        _count(datum, args, 1, 1)
    else:
        _count(datum, args, 1)
    return OneOf(to_readable(datum), tuple(args))


def _fn(datum: tuple, args: tuple, depth: int) -> Type:
    _count(datum, args, 2, 2)
    if type(args[0]) is not tuple:
        raise _bad(f"{preview(datum, 60)}: the parameter types come in a vector")
    for param in args[0]:
        if not (type(param) is Symbol and param.name == "&"):
            _parse(param, depth + 1)
    _parse(args[1], depth + 1)
    return Simple(to_readable(datum), _is_fn)


def _resource(datum: tuple, args: tuple, depth: int) -> Type:
    _count(datum, args, 0, 1)
    return Simple(to_readable(datum), _tagged("resource"))


_VECTOR_TYPES: dict[str, Callable[[tuple, tuple, int], Type]] = {
    "vector": _each("vector"), "list": _each("list"), "set": _each("set"), "tuple": _tuple,
    "array": _array, "map": _map, "record": _map, "map-of": _map_of, "dict": _map_of,
    "union": _union, "or": _union, "optional": _optional, "maybe": _optional, "and": _and,
    "enum": _one_of, "val": _one_of, "fn": _fn, "=>": _fn, "resource": _resource,
}


def _predicate(datum: tuple) -> Predicate:
    return Predicate(to_readable(datum), PREDICATES[datum[0].name](datum))
