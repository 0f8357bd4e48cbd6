"""Forms: what the reader makes of RTFS text, and what the compiler compiles.

Every form carries the line and column where it starts. `form_to_value` gives the value a
quoted form denotes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rtfs.errors import RtfsSyntaxError
from rtfs.values import DelegationHint, Map, RList, Symbol, make_set

COLON = Symbol(":")  # a lone `:` between a binding and its type, as in `[x : int]`
TYPE_FOLLOWS = ":"  # the annotation of `x:` whose type is the next form, as in `x:[:vector T]`
QUASIQUOTE, UNQUOTE = Symbol("quasiquote"), Symbol("unquote")
UNQUOTE_SPLICING = Symbol("unquote-splicing")


@dataclass(slots=True)
class Form:
    line: int
    col: int


class Atom(Form):
    """A literal or a symbol, with neither type annotation nor metadata (see `make_atom`)."""

    __slots__ = ("value",)
    annotation: str | None = None  # the type of `x:int` (then value is the symbol `x`)
    meta: Map | None = None

    def __init__(self, line: int, col: int, value: Any) -> None:
        self.line, self.col, self.value = line, col, value

    def __repr__(self) -> str:
        extra = "".join(f", {name}={getattr(self, name)!r}" for name in ("annotation", "meta")
                        if getattr(self, name) is not None)
        return f"Atom({self.line}, {self.col}, {self.value!r}{extra})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Atom):
            return NotImplemented
        return (self.line, self.col, type(self.value), self.value, self.annotation, self.meta) \
            == (other.line, other.col, type(other.value), other.value, other.annotation,
                other.meta)

    __hash__ = None  # type: ignore[assignment]


class AnnotatedAtom(Atom):
    """An atom that carries a type annotation or metadata (a larger object than `Atom`)."""

    __slots__ = ("annotation", "meta")  # type: ignore[misc]  # shadow Atom's class defaults

    def __init__(self, line: int, col: int, value: Any, annotation: str | None = None,
                 meta: Map | None = None) -> None:
        self.line, self.col, self.value = line, col, value
        self.annotation, self.meta = annotation, meta


def make_atom(line: int, col: int, value: Any, annotation: str | None = None,
              meta: Map | None = None) -> Atom:
    """An atom, of the smaller class when it has neither annotation nor metadata."""
    if annotation is None and meta is None:
        return Atom(line, col, value)
    return AnnotatedAtom(line, col, value, annotation, meta)


class Seq(Form):
    """A list, vector, map or set form; `meta` is read-time metadata from `^{...}` / `^:kw`."""

    __slots__ = ("_items", "kind", "meta")

    def __init__(self, line: int, col: int, kind: str, items: Sequence[Form] | None = None,
                 meta: Map | None = None) -> None:
        self.line, self.col = line, col
        self.kind = kind  # "list" | "vector" | "map" | "set"
        self._items = items if items is not None else ()
        self.meta = meta

    @property
    def items(self) -> Sequence[Form]:
        """The forms inside (a tuple when read; any sequence when built by a caller)."""
        return self._items

    @items.setter
    def items(self, items: Sequence[Form]) -> None:
        self._items = items

    def __repr__(self) -> str:
        return f"Seq({self.line}, {self.col}, {self.kind!r}, {self.items!r}, {self.meta!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Seq):
            return NotImplemented
        return ((self.line, self.col, self.kind, self.meta) ==
                (other.line, other.col, other.kind, other.meta)
                and list(self.items) == list(other.items))

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclasses beside it


class ConstSeq(Seq):
    """A vector, map or set form whose items are all literals, held as its value.

    `items` reads the item forms again from the source text on first use (binding and match
    patterns look at them; most constant data never needs them).
    """

    __slots__ = ("_start", "_text", "value")

    def __init__(self, line: int, col: int, kind: str, value: Any, text: str, start: int,
                 meta: Map | None = None) -> None:
        super().__init__(line, col, kind, None, meta)
        self._items = None  # type: ignore[assignment]
        self.value = value
        self._text, self._start = text, start

    # Set by rtfs.builder (which imports this module): reads the item forms of the collection
    # at an offset of a text, again, at the given line and column.
    reread: Callable[[str, int, int, int], Sequence[Form]]

    @property
    def items(self) -> Sequence[Form]:
        if self._items is None:
            self._items = ConstSeq.reread(self._text, self._start, self.line, self.col)
        return self._items

    @items.setter
    def items(self, items: Sequence[Form]) -> None:
        self._items = items


class LazySeq(Seq):
    """A top-level form that was read and checked, kept as its place in the text: its items
    are read again, once, when they are first asked for (by the compiler compiling it).

    So reading a file costs memory for the top-level forms only, not for every form inside
    them: a program of many small forms reads in a small multiple of its size.
    """

    __slots__ = ("_prefix", "_start", "_text")

    # Set by rtfs.builder: reads the form starting at an offset of a text again (the offset
    # of the line it starts on given, so that positions come out right).
    reread: Callable[[str, int, int, int], Form]

    def __init__(self, line: int, col: int, kind: str, meta: Map | None, text: str,
                 start: int, prefix: tuple[int, int] | None) -> None:
        super().__init__(line, col, kind, None, meta)
        self._items = None  # type: ignore[assignment]
        self._text, self._start = text, start
        # (line, offset of that line's start) of `start` when a prefix (^meta, ') starts the
        # text before the form itself; None when the form starts there.
        self._prefix = prefix

    @property
    def items(self) -> Sequence[Form]:
        if self._items is None:
            line, line_start = self._prefix or (self.line, self._start - self.col + 1)
            again = LazySeq.reread(self._text, self._start, line, line_start)
            assert isinstance(again, Seq)
            self._items = again.items
        return self._items

    @items.setter
    def items(self, items: Sequence[Form]) -> None:
        self._items = items


@dataclass(slots=True)
class HintForm(Form):
    """`^:delegation ...` inside a `defn`/`fn` form."""

    hint: DelegationHint


def form_to_value(form: Form) -> Any:
    """The value a quoted form denotes: symbols stay symbols, collections become values."""
    if isinstance(form, Atom):
        return form.value
    if isinstance(form, ConstSeq):
        return form.value
    if isinstance(form, HintForm):
        raise RtfsSyntaxError("a delegation hint is not a value", form.line, form.col)
    assert isinstance(form, Seq)
    items = [form_to_value(item) for item in form.items]
    if form.kind == "list":
        return RList(items)
    if form.kind == "vector":
        return tuple(items)
    if form.kind == "map":
        return Map(zip(items[0::2], items[1::2]))
    return make_set(items)
