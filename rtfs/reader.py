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
  without reading it, as a `LazySeq` whose items are read when the compiler first asks;
- in a large text, runs of plainly valid text are recognised by `rtfs.plain`'s patterns,
  in C, rather than token by token.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from typing import overload

from rtfs import lexemes, plain
from rtfs.builder import _CLOSERS, _TOKEN, MAX_DEPTH, Reader, Token, form_at
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


PLAIN_MIN_CHARS = 256 * 1024  # below this, compiling the plain patterns costs more than
# they save (about 0.2 s)
_BLANKS = plain.blanks()
_PLAIN_DEPTH = MAX_DEPTH - plain.DEPTH_MARGIN  # the patterns are used up to this depth
# Lists are counted (`plain.list_end`) only this deep: code seldom nests so deep that the
# patterns do not take it, so above this a try mostly fails and costs time.
_COUNT_LISTS_FROM = 4


class Forms(Sequence[Form]):
    """The top-level forms of a checked text, kept as where each starts (offset, line and
    column packed in arrays), or, for a run of `plain.BLOCK_FORMS` plain forms, where the
    first one starts (the others are found again when asked for). `forms[i]` makes form i
    anew on every access: keep the forms you use (`list(forms)`) rather than index twice."""

    __slots__ = ("_block", "_cols", "_ends", "_lines", "_starts", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._starts = array("Q")
        self._lines = array("I")
        self._cols = array("I")
        self._ends = array("Q")  # how many forms the entries up to each one hold
        self._block: tuple[int, list[tuple[int, int, int]]] = (-1, [])  # the last one found

    def _add(self, start: int, line: int, col: int, count: int = 1) -> None:
        self._starts.append(start)
        self._lines.append(line)
        self._cols.append(col)
        self._ends.append(len(self) + count)

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    @overload
    def __getitem__(self, index: int) -> Form: ...

    @overload
    def __getitem__(self, index: slice) -> list[Form]: ...

    def __getitem__(self, index: int | slice) -> Form | list[Form]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        size = len(self)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError("form index out of range")
        entry = bisect_right(self._ends, index)
        first = self._ends[entry - 1] if entry else 0
        if self._ends[entry] - first == 1:
            start, line, col = self._starts[entry], self._lines[entry], self._cols[entry]
        else:
            start, line, col = self._in_block(entry)[index - first]
        return form_at(self._text, start, line, col)

    def _in_block(self, entry: int) -> list[tuple[int, int, int]]:
        """(start, line, column) of each form of the block `entry` (kept for the next)."""
        if self._block[0] != entry:
            text, top = self._text, plain.patterns().top.match
            start, line = self._starts[entry], self._lines[entry]
            line_start = start - self._cols[entry] + 1
            places, counted = [], start
            for _ in range(plain.BLOCK_FORMS):
                found = top(text, start)
                assert found is not None, "a block holds plain forms"
                at = found.start(1)
                newlines = text.count("\n", counted, at)
                if newlines:
                    line += newlines
                    line_start = text.rfind("\n", counted, at) + 1
                places.append((at, line, at - line_start + 1))
                start, counted = found.end(), at
            self._block = (entry, places)
        return self._block[1]

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

    def __init__(self, text: str, *, use_plain: bool | None = None) -> None:
        super().__init__(text)
        if use_plain is None:
            use_plain = len(text) >= PLAIN_MIN_CHARS
        self._plain = plain.patterns() if use_plain else None
        self._lists_counted = -1  # `plain.list_end` looked up to here (it is not tried again)

    def small_form(self, depth: int, offset: int, what: str) -> Form:
        saved, self.building = self.building, True
        try:
            return self.required_form(depth, offset, what)
        finally:
            self.building = saved

    def read_seq(self, opener: str, offset: int, depth: int, collapse: bool = True) -> Form:
        """Check the collection `opener` at `offset` starts, and those nested in it, with a
        stack of the enclosing ones rather than recursion (deep nesting costs no call per
        level); errors as `Reader.read_seq` raises them."""
        if self.building:
            return super().read_seq(opener, offset, depth, collapse)
        if depth > MAX_DEPTH:
            raise self.error(f"forms nested deeper than {MAX_DEPTH} levels", offset)
        text, match = self.text, _TOKEN.match
        items = pairs = None
        if self._plain is not None:
            items, pairs = self._plain.items.match, self._plain.pairs.match
        outer: list[tuple[str, str, int, int, int]] = []  # the enclosing collections
        closer, count = _CLOSERS[opener], 0
        fast = (pairs if opener == "{" else items) if depth <= _PLAIN_DEPTH else None
        while True:
            if fast is not None:
                self.pos = fast(text, self.pos).end()  # type: ignore[union-attr]
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
                if opener == "{" and count % 2:
                    raise self.error("a map needs an even number of forms", offset)
                if not outer:
                    return Seq(0, 0, "list")  # stands for the collection: nothing reads it
                opener, closer, offset, depth, count = outer.pop()
                count += 1
                fast = (pairs if opener == "{" else items) if depth <= _PLAIN_DEPTH else None
            elif kind == "open":
                if (depth >= _COUNT_LISTS_FROM and found.group(kind) == "("
                        and fast is not None and self.pos > self._lists_counted):
                    end, looked = plain.list_end(text, self.pos - 1, MAX_DEPTH - depth)
                    if end >= 0:  # a list of parentheses and names: counted, all checked
                        self.pos = end
                        count += 1
                        continue
                    self._lists_counted = looked
                outer.append((opener, closer, offset, depth, count))
                opener, offset, depth = found.group(kind), found.start(kind), depth + 1
                if depth > MAX_DEPTH:
                    raise self.error(f"forms nested deeper than {MAX_DEPTH} levels", offset)
                closer, count = _CLOSERS[opener], 0
                fast = (pairs if opener == "{" else items) if depth <= _PLAIN_DEPTH else None
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

    def _plain_run(self, found: re.Match[str] | None, sink: Forms) -> None:
        """Add the plain top-level form `found` and those after it to `sink`, a block of them
        at a time while they last (`where` inlined: this loop is most of the time a file of
        many small forms takes)."""
        assert self._plain is not None
        text, count, rfind = self.text, self.text.count, self.text.rfind
        top, block, blanks = self._plain.top.match, self._plain.block.match, _BLANKS.match
        counted, line, line_start = self._counted, self._line, self._line_start
        forms, blocks = 1, True
        while found is not None:
            # A block's first form starts after the blanks, as the pattern of one form says.
            if forms == 1:
                start = found.start(1)
            else:
                start = blanks(text, self.pos).end()  # type: ignore[union-attr]  # may be empty
            newlines = count("\n", counted, start)
            if newlines:
                line += newlines
                line_start = rfind("\n", counted, start) + 1
            counted = start
            sink._add(start, line, start - line_start + 1, forms)
            self.pos = found.end()
            found, forms = (block(text, self.pos) if blocks else None), plain.BLOCK_FORMS
            if found is None:  # fewer left: one at a time until the run ends
                found, forms, blocks = top(text, self.pos), 1, False
        self._counted, self._line, self._line_start = counted, line, line_start

    def check_string(self, offset: int) -> None:
        """Check the string literal at `offset` (the token just read) without making its
        text (nor slicing it out of the source unless it holds an escape)."""
        if self.text.find("\\", offset + 1, self.pos - 1) != -1:
            self._lexeme(lexemes.check_escapes, self.text[offset + 1:self.pos - 1], offset + 1)

    def spans(self, sink: Forms | None = None
              ) -> Iterator[tuple[RtfsSyntaxError | None, int, int, int, int]]:
        """(error or None, start, end, line, column) of each top-level form, in order; with
        a `sink`, runs of plain forms are added to it instead (`read`'s fast way)."""
        top = self._plain.top.match if self._plain is not None else None
        text = self.text
        while True:
            if top is not None:
                found = top(text, self.pos)
                if found is not None:
                    if sink is not None:
                        self._plain_run(found, sink)
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


def read(text: str, *, use_plain: bool | None = None) -> Forms:
    """Every top-level form of `text` (made when asked for); raises the first
    `RtfsSyntaxError`. `use_plain`: move past plainly valid text by `rtfs.plain`'s patterns
    (default: for texts of `PLAIN_MIN_CHARS` or more; the result is the same either way)."""
    forms = Forms(text)
    for error, start, _, line, col in _Checker(text, use_plain=use_plain).spans(forms):
        if error is not None:
            raise error
        forms._add(start, line, col)
    return forms


def read_each(text: str, *, use_plain: bool | None = None) -> Iterator[Form | RtfsSyntaxError]:
    """Yield each top-level form, or the syntax error standing in its place, then go on."""
    for item, _, _ in read_spans(text, use_plain=use_plain):
        yield item


def read_spans(text: str, *, use_plain: bool | None = None
               ) -> Iterator[tuple[Form | RtfsSyntaxError, int, int]]:
    """Like `read_each`, with the start and end offsets of the text each item came from."""
    for error, start, end, line, col in _Checker(text, use_plain=use_plain).spans():
        yield (error if error is not None else form_at(text, start, line, col)), start, end
