"""Reader: RTFS text -> its top-level forms, each carrying line and column.

`read(text)` returns every top-level form or raises the first `RtfsSyntaxError`.
`read_each(text)` yields each top-level form or the syntax error that stands in its place,
and goes on reading after it, so that one bad form does not hide the rest of a file.

Memory stays linear in the text with a small constant, whatever the shape of the source:

- the whole text is checked by `rtfs.builder.Reader`'s own code in a mode that builds no
  collection (`_Checker`), so every error is the one building the form would raise, at the
  same line and column, and a huge form made of tiny ones costs no object per tiny form;
- `read` keeps where each top-level form starts (offset, line and column packed in arrays,
  `Forms`) and makes a form when it is asked for (`rtfs.builder.form_at`): a list is made
  without reading it, as a `LazySeq` whose items are read when the compiler first asks.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from typing import overload

from rtfs.builder import _CLOSERS, _D, _TOKEN, MAX_DEPTH, Reader, Token, form_at
from rtfs.errors import RtfsSyntaxError
from rtfs.forms import (
    COLON,
    QUASIQUOTE,
    TYPE_FOLLOWS,
    UNQUOTE,
    UNQUOTE_SPLICING,
    AnnotatedAtom,
    Atom,
    ConstSeq,
    Form,
    HintForm,
    LazySeq,
    Seq,
    form_to_value,
    make_atom,
)

__all__ = ["COLON", "MAX_DEPTH", "QUASIQUOTE", "TYPE_FOLLOWS", "UNQUOTE", "UNQUOTE_SPLICING",
           "AnnotatedAtom", "Atom", "ConstSeq", "Form", "Forms", "HintForm", "LazySeq", "Seq",
           "form_to_value", "make_atom", "read", "read_each", "read_spans"]


PLAIN_MIN_CHARS = 32768  # below this, compiling the plain patterns costs more than they save
_PLAIN_LEVELS = 2  # collections nested this deep inside an item match at once

# -- plainly valid text: many forms recognised by one match, in C --------------------------
# Only tokens that `Reader` reads without error, each ending where the token pattern ends it:
# the `sym` and `int` tokens (valid by their pattern), decimal fractions, keywords that are
# valid (no `:` inside, no `/` at the end), strings whose escapes are all one-character ones;
# and blanks and line comments between them. Everything else (metadata, quotes, `#_`, block
# comments, tagged literals, other numbers, collections nested deeper) is taken by the
# token path, which checks it as `Reader` does.
_SEP = r"(?:[\s,]++|;[^\n]*+)"
_ATOM = (r"(?:(?:(?:[^" + _D + r"#'\d:/+\-.]|[+\-](?![\d.]))[^" + _D + r":]*+"
         r"|[+\-]?[0-9]++(?:\.[0-9]++(?:[eE][+\-]?[0-9]++)?)?"
         r"|:[^" + _D + r":/][^" + _D + r":]*+(?<!/))(?![^" + _D + r"])"
         r'|"[^"\\]*+(?:\\[ntr"\\0bf][^"\\]*+)*+")')


def _collections(item: str) -> str:
    """A list, `#(...)`, vector, set or map (of pairs) of `item`s."""
    many = "(?:" + _SEP + "*+" + item + ")*+" + _SEP + "*+"
    pairs = "(?:" + _SEP + "*+" + item + _SEP + "*+" + item + ")*+" + _SEP + "*+"
    return r"(?:#?\(" + many + r"\)|\[" + many + r"\]|#\{" + many + r"\}|\{" + pairs + r"\})"


def _item(levels: int) -> str:
    """A plain atom, or a collection of them nested at most `levels` deep."""
    item = _ATOM
    for _ in range(levels):
        item = "(?:" + _ATOM + "|" + _collections(item) + ")"
    return item


_Match = Callable[[str, int], "re.Match[str] | None"]


@cache
def _plain_patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """One plain top-level form (its start is group 1), plain items of a list, vector or
    set, and plain pairs of a map (compiled on first use)."""
    item = _item(_PLAIN_LEVELS)
    return (re.compile(_SEP + "*+(" + item + ")"),
            re.compile("(?:" + _SEP + "*+" + item + ")*+"),
            re.compile("(?:" + _SEP + "*+" + item + _SEP + "*+" + item + ")*+"))


class Forms(Sequence[Form]):
    """The top-level forms of a checked text, kept as where each starts (three packed
    numbers per form); `forms[i]` makes form i anew on every access, so keep the forms you
    use (`list(forms)`) rather than indexing twice."""

    __slots__ = ("_cols", "_lines", "_starts", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._starts = array("Q")
        self._lines = array("I")
        self._cols = array("I")

    def _add(self, start: int, line: int, col: int) -> None:
        self._starts.append(start)
        self._lines.append(line)
        self._cols.append(col)

    def __len__(self) -> int:
        return len(self._starts)

    @overload
    def __getitem__(self, index: int) -> Form: ...

    @overload
    def __getitem__(self, index: slice) -> list[Form]: ...

    def __getitem__(self, index: int | slice) -> Form | list[Form]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return form_at(self._text, self._starts[index], self._lines[index], self._cols[index])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Forms({list(self)!r})"


class _Checker(Reader):
    """`Reader` in a mode that checks collections without building them: it keeps no item
    (a map counts its items), and returns an empty `Seq` standing for the collection. The
    forms metadata and hints are made of are built as `Reader` builds them (their values
    decide what is valid), so errors are Reader's own."""

    building = False

    def __init__(self, text: str, *, plain: bool | None = None) -> None:
        super().__init__(text)
        if plain is None:
            plain = len(text) >= PLAIN_MIN_CHARS
        self._plain = _plain_patterns() if plain else None

    def small_form(self, depth: int, offset: int, what: str) -> Form:
        saved, self.building = self.building, True
        try:
            return self.required_form(depth, offset, what)
        finally:
            self.building = saved

    def read_seq(self, opener: str, offset: int, depth: int, collapse: bool = True) -> Form:
        if self.building:
            return super().read_seq(opener, offset, depth, collapse)
        if depth > MAX_DEPTH:
            raise self.error(f"forms nested deeper than {MAX_DEPTH} levels", offset)
        closer = _CLOSERS[opener]
        count = 0
        text, match = self.text, _TOKEN.match
        plain = None
        if self._plain is not None and depth + _PLAIN_LEVELS <= MAX_DEPTH:
            plain = self._plain[2 if opener == "{" else 1].match  # pairs keep the count even
        while True:
            if plain is not None:
                self.pos = plain(text, self.pos).end()  # type: ignore[union-attr]
            found = match(text, self.pos)
            assert found is not None  # the `bad` alternative matches any character
            kind = found.lastgroup
            self.pos = found.end()
            # A `sym` or `int` token is valid by the pattern that found it: nothing to check.
            if kind == "sym" or kind == "int":
                count += 1
            elif kind == "close":
                closing = found.group(kind)
                if closing != closer:
                    raise self.error(f"expected {closer!r} to close {opener!r}, "
                                     f"found {closing!r}", found.start(kind))
                break
            elif kind == "open":
                self.read_seq(found.group(kind), found.start(kind), depth + 1)
                count += 1
            elif kind == "kw":
                # Its pattern leaves one fault to check: a `/` at the end. Keywords are
                # interned for good: checking makes none.
                if text[self.pos - 1] == "/":
                    self.keyword(found.group(kind), found.start(kind))
                count += 1
            elif kind == "string":
                self.check_string(found.start(kind))
                count += 1
            else:
                count += self._general(found.start(), opener, closer, offset, depth)
        if opener == "{" and count % 2:
            raise self.error("a map needs an even number of forms", offset)
        return Seq(0, 0, "list")  # stands for the collection: nothing reads its items

    def _general(self, at: int, opener: str, closer: str, offset: int, depth: int) -> int:
        """The token at `at` by the general path, as `Reader.read_seq` takes it: the number
        of items it makes (a discarded form makes none)."""
        self.pos = at
        token = self.next_token()
        if token is None:
            raise self.error(
                f"unclosed {opener!r}: expected {closer!r} before end of input", offset)
        if token[0] == "discard":
            self.discard(depth, token[2])
            return 0
        self.form_from(token, depth)
        return 1

    def _plain_run(self, found: re.Match[str] | None, top: _Match, sink: Forms) -> None:
        """Add the plain top-level form `found` and those right after it to `sink` (`where`
        inlined: this loop is most of the time a file of many small forms takes)."""
        text, count, rfind = self.text, self.text.count, self.text.rfind
        add_start, add_line, add_col = sink._starts.append, sink._lines.append, sink._cols.append
        counted, line, line_start = self._counted, self._line, self._line_start
        while found is not None:
            start = found.start(1)
            newlines = count("\n", counted, start)
            if newlines:
                line += newlines
                line_start = rfind("\n", counted, start) + 1
            counted = start
            add_start(start)
            add_line(line)
            add_col(start - line_start + 1)
            self.pos = found.end()
            found = top(text, self.pos)
        self._counted, self._line, self._line_start = counted, line, line_start

    def check_string(self, offset: int) -> None:
        """Check the string literal at `offset` (the token just read) without slicing it
        out of the text unless it holds an escape."""
        if self.text.find("\\", offset + 1, self.pos - 1) != -1:
            self.string(offset)

    def spans(self, sink: Forms | None = None
              ) -> Iterator[tuple[RtfsSyntaxError | None, int, int, int, int]]:
        """(error or None, start, end, line, column) of each top-level form, in order; with
        a `sink`, runs of plain forms are added to it instead (`read`'s fast way)."""
        top = self._plain[0].match if self._plain is not None else None
        text = self.text
        while True:
            if top is not None:
                found = top(text, self.pos)
                if found is not None:
                    if sink is not None:
                        self._plain_run(found, top, sink)
                        continue
                    start, self.pos = found.start(1), found.end()
                    yield None, start, self.pos, *self.where(start)
                    continue
            start = self.pos
            token: Token | None = None
            try:
                token = self.next_token()
                if token is None:
                    return
                start = token[2]
                line, col = self.where(start)
                self.form_from(token, 0)
            except RtfsSyntaxError as err:
                if token is not None and token[0] == "close":
                    self.pos = start + 1
                else:
                    self.skip_to_form_end(start)
                yield err, start, self.pos, 0, 0  # the error carries its position
                continue
            yield None, start, self.pos, line, col


def read(text: str, *, plain: bool | None = None) -> Forms:
    """Every top-level form of `text` (made when asked for); raises the first
    `RtfsSyntaxError`. `plain`: recognise plainly valid text by the large patterns (default:
    for texts of `PLAIN_MIN_CHARS` or more; the result is the same either way)."""
    forms = Forms(text)
    for error, start, _, line, col in _Checker(text, plain=plain).spans(forms):
        if error is not None:
            raise error
        forms._add(start, line, col)
    return forms


def read_each(text: str, *, plain: bool | None = None) -> Iterator[Form | RtfsSyntaxError]:
    """Yield each top-level form, or the syntax error standing in its place, then go on."""
    for item, _, _ in read_spans(text, plain=plain):
        yield item


def read_spans(text: str, *, plain: bool | None = None
               ) -> Iterator[tuple[Form | RtfsSyntaxError, int, int]]:
    """Like `read_each`, with the start and end offsets of the text each item came from."""
    for error, start, end, line, col in _Checker(text, plain=plain).spans():
        yield (error if error is not None else form_at(text, start, line, col)), start, end
