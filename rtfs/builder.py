"""Builder: RTFS text -> the tree of forms it writes, each carrying line and column.

`Reader` reads one form at a time, recursively, and builds it: the compiler's way in (a
checked top-level form is read again here when its items are first asked for). `rtfs.reader`
is the entry point: it checks a whole text with this code in a mode that builds nothing.

Memory stays linear in the form with a small constant: one regular expression finds each
token together with the blanks and comments before it (strings and comments are matched
without backtracking state per character), line numbers are counted as the reader moves
forward instead of being indexed, and a vector, map or set made only of literals is kept as
its value (`ConstSeq`) rather than as one form per item; its item forms are read again from
the text only if a caller asks for them.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Sequence
from typing import Any

from rtfs import lexemes
from rtfs.errors import RtfsSyntaxError
from rtfs.forms import (
    COLON,
    QUASIQUOTE,
    UNQUOTE,
    UNQUOTE_SPLICING,
    Atom,
    ConstSeq,
    Form,
    HintForm,
    LazySeq,
    Seq,
    form_to_value,
    make_atom,
)
from rtfs.printer import int_from_text
from rtfs.values import DelegationHint, HintKind, Keyword, Map, Symbol, make_set, map_from_lists

__all__ = ["MAX_DEPTH", "Reader", "form_at"]

MAX_DEPTH = 128  # nesting deeper than this is refused: no program needs it, and it bounds recursion

_D = r'\s,()\[\]{}";^`~'  # characters that end an atom
_TOKEN = re.compile(
    # blanks and line comments before the token, possessive so that nothing backtracks
    r"(?:[\s,]++|;[^\n]*+)*+(?:"
    # the common atoms, recognised here so that they need no second look
    r"(?P<sym>(?:[^" + _D + r"#'\d:/+\-.]|[+\-](?![\d.]))[^" + _D + r":]*+)(?![^" + _D + r"])"
    r"|(?P<int>[+-]?\d++)(?![^" + _D + r"])"
    r"|(?P<kw>:[^" + _D + r":/][^" + _D + r":]*+)(?![^" + _D + r"])"
    r"|(?P<open>\#\{|\#\(|[(\[{])"
    r"|(?P<close>[)\]}])"
    r'|(?P<string>"[^"\\]*+(?:\\.[^"\\]*+)*+")'
    # any other atom: numbers in other notations, annotated symbols, tagged literals
    r"|(?P<atom>[^" + _D + r"#'][^" + _D + r"]*+)"
    r"|(?P<quote>')|(?P<syntaxquote>`)|(?P<unquote>~@?)|(?P<meta>\^)|(?P<block>\#\|)"
    r"|(?P<special>\#\#[-\w]+)|(?P<discard>\#_)|(?P<badstring>\")|(?P<end>\Z)|(?P<bad>.))",
    re.DOTALL,
)

_CLOSERS = {"(": ")", "[": "]", "{": "}", "#{": "}", "#(": ")"}
_KINDS = {"(": "list", "[": "vector", "{": "map", "#{": "set", "#(": "list"}
_SPECIALS = {"##Inf": float("inf"), "##-Inf": float("-inf"), "##NaN": float("nan")}
_LITERAL_WORDS = {"true": True, "false": False, "nil": None}
_MISSING = object()
_PREFIXES = {"quote": "'", "syntaxquote": "`", "~": "~", "~@": "~@"}
_PREFIX_SYMBOLS = {"quote": Symbol("quote"), "syntaxquote": QUASIQUOTE, "~": UNQUOTE,
                   "~@": UNQUOTE_SPLICING}

_BLOCK_DELIMITER = re.compile(r"\#\||\|\#")
_CONSTANT_KINDS = frozenset({"vector", "map", "set"})
_NCOLUMNS = 4096
_COLUMNS = tuple(range(_NCOLUMNS))  # one shared int object per column (ints > 256 are not)
_VALUE_KINDS: dict[type, str] = {tuple: "vector", frozenset: "set"}

Token = tuple[str, str, int]  # kind, text (empty for strings: see `string`), start offset


class Reader:
    def __init__(self, text: str, pos: int = 0, line: int = 1, line_start: int = 0) -> None:
        self.text = text
        self.pos = pos
        # Line of `_counted`, counted forward as the reader moves (no index of line starts).
        self._counted, self._line, self._line_start = pos, line, line_start
        self._atoms: dict[str, Any] = dict(_LITERAL_WORDS)

    # -- positions -------------------------------------------------------------------------
    def where(self, offset: int) -> tuple[int, int]:
        if offset < self._counted:  # only error paths look back: count from the start
            line = self.text.count("\n", 0, offset) + 1
            return line, offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        newlines = self.text.count("\n", self._counted, offset)
        if newlines:  # every form on one line shares one int object for its line
            self._line += newlines
            self._line_start = self.text.rfind("\n", self._counted, offset) + 1
        self._counted = offset
        col = offset - self._line_start + 1
        return self._line, _COLUMNS[col] if col < _NCOLUMNS else col

    def error(self, message: str, offset: int) -> RtfsSyntaxError:
        return RtfsSyntaxError(message, *self.where(offset))

    # -- tokens ----------------------------------------------------------------------------
    def next_token(self) -> Token | None:
        """The next meaningful token as (kind, text, offset), skipping blanks and comments."""
        while True:
            match = _TOKEN.match(self.text, self.pos)
            assert match is not None  # the `bad` alternative matches any character
            kind = match.lastgroup
            assert kind is not None
            start = match.start(kind)
            self.pos = match.end()
            if kind == "end":
                return None
            if kind == "block":
                self._skip_block_comment(start)
                continue
            if kind == "string":  # the text is sliced out of self.text once, by `string`
                return kind, "", start
            text = match.group(kind)
            if kind in ("sym", "int", "kw"):
                kind = "atom"  # the general path, as `form_from` sees it
            return kind, text, start

    def peek_token(self) -> Token | None:
        saved = self.pos
        token = self.next_token()
        self.pos = saved
        return token

    def _skip_block_comment(self, start: int) -> None:
        depth = 1
        while depth:
            match = _BLOCK_DELIMITER.search(self.text, self.pos)
            if match is None:
                self.pos = len(self.text)
                raise self.error("unterminated block comment #| ... |#", start)
            depth += 1 if match.group() == "#|" else -1
            self.pos = match.end()

    # -- forms -----------------------------------------------------------------------------
    def read_form(self, depth: int = 0) -> Form | None:
        """Read one form; None at the end of the text."""
        token = self.next_token()
        if token is None:
            return None
        return self.form_from(token, depth)

    def form_from(self, token: Token, depth: int) -> Form:
        kind, text, offset = token
        if kind == "atom":
            return self.atom(text, offset)
        if kind == "open":
            return self.read_seq(text, offset, depth + 1)
        if kind == "string":
            return Atom(*self.where(offset), self.string(offset))
        if kind == "special":
            if text not in _SPECIALS:
                raise self.error(f"unknown special literal {text}", offset)
            return Atom(*self.where(offset), _SPECIALS[text])
        if kind in ("quote", "syntaxquote", "unquote"):
            key = text if kind == "unquote" else kind
            line, col = self.where(offset)
            quoted = self.required_form(depth + 1, offset, _PREFIXES[key])
            return Seq(line, col, "list", [Atom(line, col, _PREFIX_SYMBOLS[key]), quoted])
        if kind == "meta":
            return self.read_meta(offset, depth)
        if kind == "discard":  # a loop, not recursion: `#_ a #_ b ... z` may be long
            while True:
                self.discard(depth, offset)
                following = self.next_token()
                if following is None:
                    raise self.error("#_ discards the last form: nothing left to read", offset)
                if following[0] != "discard":
                    return self.form_from(following, depth)
                offset = following[2]
        if kind == "close":
            raise self.error(f"unexpected closing {text!r}", offset)
        if kind == "badstring":
            raise self.error("unterminated string", offset)
        raise self.error(f"unexpected character {text!r}", offset)

    def discard(self, depth: int, offset: int) -> None:
        """Read and drop the form after `#_` (one level deeper: `#_ #_ ...` is bounded)."""
        self.required_form(depth + 1, offset, "#_")

    def required_form(self, depth: int, offset: int, what: str) -> Form:
        if depth > MAX_DEPTH:
            raise self.error(f"forms nested deeper than {MAX_DEPTH} levels", offset)
        token = self.next_token()
        if token is None or token[0] == "close":
            if token is not None:
                self.pos = token[2]
            raise self.error(f"{what} must be followed by a form", offset)
        return self.form_from(token, depth)

    def small_form(self, depth: int, offset: int, what: str) -> Form:
        """A form that metadata or a hint is made of (its value is needed: always built)."""
        return self.required_form(depth, offset, what)

    def read_seq(self, opener: str, offset: int, depth: int, collapse: bool = True) -> Form:
        """Read the items of a collection up to its closer.

        A vector, map or set keeps its literal items as bare values (and their positions
        packed in an array) for as long as every item is a literal, so that a large constant
        never exists as one form per item; the first item that is not a literal turns the
        values read so far back into atoms.
        """
        if depth > MAX_DEPTH:
            raise self.error(f"forms nested deeper than {MAX_DEPTH} levels", offset)
        line, col = self.where(offset)
        closer = _CLOSERS[opener]
        kind = _KINDS[opener]
        items: list[Any] = []
        positions: array[int] | None = None  # line << 24 | col of each literal read so far
        starts: array[int] | None = None  # where each nested constant collection starts
        if collapse and kind in _CONSTANT_KINDS:
            positions, starts = array("Q"), array("Q")
        text, match, atoms = self.text, _TOKEN.match, self._atoms
        while True:
            found = match(text, self.pos)
            assert found is not None  # the `bad` alternative matches any character
            tkind = found.lastgroup
            assert tkind is not None
            self.pos = found.end()
            form: Any
            if tkind == "int" or tkind == "kw" or tkind == "sym":  # the common cases first
                start, name = found.start(tkind), found.group(tkind)
                value = atoms.get(name, _MISSING)
                if value is _MISSING:
                    if tkind == "int":
                        value = int_from_text(name)
                    elif tkind == "kw":
                        value = self.keyword(name, start)
                        self._remember(name, value)
                    else:
                        form = self.atom(name, start)
                        value = form.value
                at_line, at_col = self.where(start)
                if positions is not None and type(value) is not Symbol:
                    items.append(value)  # a literal of a collection that may stay constant
                    positions.append(at_line << 24 | min(at_col, 0xFFFFFF))
                    continue
                form = Atom(at_line, at_col, value)
            elif tkind == "close":
                closing = found.group(tkind)
                if closing != closer:
                    raise self.error(f"expected {closer!r} to close {opener!r}, "
                                     f"found {closing!r}", found.start(tkind))
                break
            elif tkind == "open":
                form = self.read_seq(found.group(tkind), found.start(tkind), depth + 1)
            elif tkind == "string":
                start = found.start(tkind)
                form = Atom(*self.where(start), self.string(start))
            else:
                self.pos = found.start()  # everything else takes the general path
                token = self.next_token()
                if token is None:
                    raise self.error(
                        f"unclosed {opener!r}: expected {closer!r} before end of input", offset)
                if token[0] == "discard":  # `#_ x` inside a collection is no item at all
                    self.discard(depth, token[2])
                    continue
                form = self.form_from(token, depth)
            if positions is not None and starts is not None:
                if type(form) is Atom and type(form.value) is not Symbol:
                    items.append(form.value)
                elif type(form) is ConstSeq and form.meta is None:
                    items.append(form.value)
                    starts.frombytes(bytes(8 * (len(items) - 1 - len(starts))))
                    starts.append(form._start)
                else:
                    items = self._as_forms(items, positions, starts)
                    positions = starts = None
                    items.append(form)
                    continue
                positions.append(form.line << 24 | min(form.col, 0xFFFFFF))
                continue
            items.append(form)
        if opener == "{" and len(items) % 2:
            raise self.error("a map needs an even number of forms", offset)
        if opener == "#(":
            return _anonymous_fn(line, col, items)
        if positions is not None:
            return ConstSeq(line, col, kind, _constant_value(kind, items), self.text, offset)
        return Seq(line, col, kind, tuple(items))  # a tuple: no spare room, unlike a list

    def _as_forms(self, values: list[Any], positions: array[int], starts: array[int]
                  ) -> list[Any]:
        """Literal values read optimistically, back as forms."""
        forms: list[Any] = []
        for index, (value, pos) in enumerate(zip(values, positions)):
            line, col = pos >> 24, pos & 0xFFFFFF
            start = starts[index] if index < len(starts) else 0
            if start:
                kind = "map" if isinstance(value, Map) else _VALUE_KINDS[type(value)]
                forms.append(ConstSeq(line, col, kind, value, self.text, start))
            else:
                forms.append(Atom(line, col, value))
        return forms

    def read_meta(self, offset: int, depth: int) -> Form:
        line, col = self.where(offset)
        meta_form = self.small_form(depth + 1, offset, "^")
        if isinstance(meta_form, Atom) and meta_form.value is Keyword("delegation"):
            return HintForm(line, col, self.read_hint(offset, depth))
        if isinstance(meta_form, Atom) and isinstance(meta_form.value, Keyword):
            meta = Map({meta_form.value: True})
        elif isinstance(meta_form, Seq) and meta_form.kind == "map":
            meta = form_to_value(meta_form)
        else:
            raise self.error("metadata must be a keyword or a map", offset)
        target = self.required_form(depth + 1, offset, "metadata")
        if isinstance(target, Atom):
            merged = Map({**(target.meta or {}), **meta})
            return make_atom(target.line, target.col, target.value, target.annotation, merged)
        if not isinstance(target, Seq):
            raise self.error("metadata cannot apply to a delegation hint", offset)
        target.meta = Map({**(target.meta or {}), **meta})
        return target

    def read_hint(self, offset: int, depth: int) -> DelegationHint:
        form = self.small_form(depth + 1, offset, "^:delegation")
        if isinstance(form, Seq) and form.kind == "map":
            return _hint_from_map(form_to_value(form), self.error, offset)
        if isinstance(form, Atom) and isinstance(form.value, Keyword):
            kind = form.value.name
            if kind == "local":
                return DelegationHint(HintKind.LOCAL)
            if kind in ("local-model", "remote"):
                target = self.small_form(depth + 1, offset, f":{kind}")
                if not (isinstance(target, Atom) and isinstance(target.value, str)):
                    raise self.error(f"^:delegation :{kind} needs a string id", offset)
                return DelegationHint(HintKind(kind), target.value)
        raise self.error(
            "^:delegation takes :local, :local-model \"id\", :remote \"id\" or a map", offset
        )

    def atom(self, text: str, offset: int) -> Atom:
        line, col = self.where(offset)
        known = self._atoms.get(text, _MISSING)
        if known is not _MISSING:
            return Atom(line, col, known)
        if text == ":":
            return Atom(line, col, COLON)
        first = text[0]
        if first == ":":
            return Atom(line, col, self.keyword(text, offset))
        if first.isdigit() or (first in "+-." and len(text) > 1 and text[1].isdigit()):
            number = self.number(text, offset)
            if number is not None:
                return Atom(line, col, number)
        tagged = lexemes.tagged(text)
        if tagged is not None:
            return Atom(line, col, tagged)
        value, annotation = self.symbol(text, offset)
        if annotation is None:
            self._remember(text, value)
        return make_atom(line, col, value, annotation)

    def _remember(self, text: str, value: Any) -> None:
        if len(self._atoms) < 4096:  # repeated names are read once
            self._atoms[text] = value

    def symbol(self, text: str, offset: int) -> tuple[Symbol, str | None]:
        return self._lexeme(lexemes.symbol, text, offset)

    def keyword(self, text: str, offset: int) -> Keyword:
        return self._lexeme(lexemes.keyword, text, offset)

    def number(self, text: str, offset: int) -> int | float | None:
        return self._lexeme(lexemes.number, text, offset)

    def string(self, offset: int) -> str:
        """The string literal whose opening quote is at `offset` (the token just read)."""
        body = self.text[offset + 1:self.pos - 1]
        if "\\" not in body:
            return body
        return self._lexeme(lexemes.unescape, body, offset + 1)

    def _lexeme(self, parse: Callable[[str], Any], text: str, offset: int) -> Any:
        try:
            return parse(text)
        except lexemes.LexemeError as err:
            raise self.error(err.message, offset + err.at) from None

    def skip_to_form_end(self, start: int) -> None:
        """After an error, move past the rest of the top-level form that began at `start`."""
        self.pos = start
        depth = 0
        while True:
            try:
                token = self.next_token()
            except RtfsSyntaxError:
                continue
            if token is None:
                return
            kind = token[0]
            if kind == "badstring":  # everything after an unterminated quote is its text
                self.pos = len(self.text)
                return
            if kind == "open":
                depth += 1
            elif kind == "close":
                depth -= 1
            if depth <= 0 and kind not in ("meta", "quote", "syntaxquote", "unquote", "discard"):
                return


def _constant_value(kind: str, values: list[Any]) -> Any:
    if kind == "vector":
        return tuple(values)
    if kind == "map":
        return map_from_lists(values[0::2], values[1::2])
    return make_set(values)


def _hint_from_map(meta: Map, error: Any, offset: int) -> DelegationHint:
    target = meta.get(Keyword("target"))
    if not isinstance(target, str):
        raise error("^:delegation {...} needs a string :target", offset)
    extra = sorted(
        (k.name if isinstance(k, Keyword) else str(k), v)
        for k, v in meta.items()
        if k is not Keyword("target")
    )
    return DelegationHint(HintKind.TARGET, target, tuple(extra))


def _anonymous_fn(line: int, col: int, body: list[Form]) -> Seq:
    """`#(* % %)` -> `(fn [%1] (* %1 %1))`; `%N` are positional, `%&` the rest."""
    highest, rest = 0, False

    def scan(form: Form) -> Form:
        nonlocal highest, rest
        if isinstance(form, Seq) and not isinstance(form, ConstSeq):
            return Seq(form.line, form.col, form.kind, [scan(f) for f in form.items], form.meta)
        if isinstance(form, Atom) and isinstance(form.value, Symbol):
            name = form.value.name
            if name == "%":
                highest = max(highest, 1)
                return Atom(form.line, form.col, Symbol("%1"))
            if name == "%&":
                rest = True
            elif name[0] == "%" and name[1:].isdigit():
                highest = max(highest, int(name[1:]))
        return form

    call = Seq(line, col, "list", [scan(f) for f in body])
    params: list[Form] = [Atom(line, col, Symbol(f"%{i}")) for i in range(1, highest + 1)]
    if rest:
        params += [Atom(line, col, Symbol("&")), Atom(line, col, Symbol("%&"))]
    head = Atom(line, col, Symbol("fn"))
    return Seq(line, col, "list", [head, Seq(line, col, "vector", params), call])


def _reread(text: str, start: int, line: int, col: int) -> Sequence[Form]:
    """The item forms of the collection at `start` (a ConstSeq's, when asked for)."""
    reader = Reader(text, start, line, start - col + 1)
    token = reader.next_token()
    assert token is not None and token[0] == "open"
    seq = reader.read_seq(token[1], token[2], 1, collapse=False)
    assert isinstance(seq, Seq)
    return seq.items


ConstSeq.reread = staticmethod(_reread)  # type: ignore[assignment]


def _reread_form(text: str, start: int, line: int, line_start: int) -> Form:
    """The top-level form starting at `start`, read again (a LazySeq's, when asked for)."""
    form = Reader(text, start, line, line_start).read_form()
    assert form is not None
    return form


LazySeq.reread = staticmethod(_reread_form)  # type: ignore[assignment]


def form_at(text: str, start: int, line: int, col: int) -> Form:
    """The top-level form of checked `text` that starts at `start` (at `line`, `col`).

    A list is made without reading it (its items are read when asked for); any other form
    is read here, and a collection that is not constant is kept as a `LazySeq` too.
    """
    if text[start] == "(" or text.startswith("#(", start):
        return LazySeq(line, col, "list", None, text, start, None)
    line_start = start - col + 1
    form = Reader(text, start, line, line_start).read_form()
    assert form is not None, "form_at needs the start of a form of checked text"
    if type(form) is Seq:
        return lazy_seq(form, text, start, line, line_start)
    return form


def lazy_seq(form: Seq, text: str, start: int, line: int, line_start: int) -> LazySeq:
    """`form`, read from `text` at `start`, kept as its place in the text."""
    # Where the line of `start` begins is kept only when a prefix (^meta, ') starts the text
    # before the form itself (most forms have none).
    own = line == form.line and start - line_start + 1 == form.col
    return LazySeq(form.line, form.col, form.kind, form.meta, text, start,
                   None if own else (line, line_start))
