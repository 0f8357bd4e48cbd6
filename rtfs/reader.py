"""Reader: RTFS text -> forms that carry line and column.

`read(text)` returns every top-level form or raises the first `RtfsSyntaxError`.
`read_each(text)` yields each top-level form or the syntax error that stands in its place,
and goes on reading after it, so that one bad form does not hide the rest of a file.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rtfs.errors import RtfsSyntaxError
from rtfs.values import DelegationHint, HintKind, Keyword, Map, RList, Symbol, TaggedLiteral

MAX_DEPTH = 128  # nesting deeper than this is refused: no program needs it, and it bounds recursion


@dataclass(slots=True)
class Form:
    line: int
    col: int


@dataclass(slots=True)
class Atom(Form):
    """A literal or a symbol. `annotation` holds the type of `x:int` (then value is `x`)."""

    value: Any
    annotation: str | None = None
    meta: Map | None = None


@dataclass(slots=True)
class Seq(Form):
    """A list, vector, map or set form; `meta` is read-time metadata from `^{...}` / `^:kw`."""

    kind: str  # "list" | "vector" | "map" | "set"
    items: list[Form] = field(default_factory=list)
    meta: Map | None = None


@dataclass(slots=True)
class HintForm(Form):
    """`^:delegation ...` inside a `defn`/`fn` form."""

    hint: DelegationHint


_TOKEN = re.compile(
    r"""
    (?P<ws>[\s,]+)
  | (?P<comment>;[^\n]*)
  | (?P<block>\#\|)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<badstring>")
  | (?P<open>\#\{|\#\(|[(\[{])
  | (?P<close>[)\]}])
  | (?P<special>\#\#[-\w]+)
  | (?P<discard>\#_)
  | (?P<quote>')
  | (?P<meta>\^)
  | (?P<atom>[^\s,()\[\]{}";^\#'][^\s,()\[\]{}";^]*)
  | (?P<bad>.)
    """,
    re.VERBOSE | re.DOTALL,
)

_CLOSERS = {"(": ")", "[": "]", "{": "}", "#{": "}", "#(": ")"}
_KINDS = {"(": "list", "[": "vector", "{": "map", "#{": "set", "#(": "list"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "0": "\0", "b": "\b", "f": "\f"}
_SPECIALS = {"##Inf": float("inf"), "##-Inf": float("-inf"), "##NaN": float("nan")}
_LITERAL_WORDS = {"true": True, "false": False, "nil": None}

_INT = re.compile(r"[+-]?\d+")
_RADIX = re.compile(r"([+-]?)0([xXoObB])([0-9a-fA-F]+)")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*([eE][+-]?\d+)?|\d+[eE][+-]?\d+|\.\d+([eE][+-]?\d+)?)")
_RATIO = re.compile(r"([+-]?\d+)/(\d+)")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_RESOURCE = re.compile(r"resource://\S+")
_NAME = re.compile(r"[^\d:/][^:]*|/")
_BLOCK_DELIMITER = re.compile(r"\#\||\|\#")
_RADIXES = {"x": 16, "o": 8, "b": 2}


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    # -- positions -------------------------------------------------------------------------
    def where(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self._line_starts, offset)
        return line, offset - self._line_starts[line - 1] + 1

    def error(self, message: str, offset: int) -> RtfsSyntaxError:
        return RtfsSyntaxError(message, *self.where(offset))

    # -- tokens ----------------------------------------------------------------------------
    def next_token(self) -> tuple[str, str, int] | None:
        """The next meaningful token as (kind, text, offset), skipping blanks and comments."""
        while self.pos < len(self.text):
            match = _TOKEN.match(self.text, self.pos)
            assert match is not None  # the `bad` alternative matches any character
            kind, start = match.lastgroup, self.pos
            self.pos = match.end()
            if kind in ("ws", "comment"):
                continue
            if kind == "block":
                self._skip_block_comment(start)
                continue
            return kind, match.group(), start
        return None

    def peek_token(self) -> tuple[str, str, int] | None:
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

    def form_from(self, token: tuple[str, str, int], depth: int) -> Form:
        kind, text, offset = token
        if kind == "open":
            return self.read_seq(text, offset, depth + 1)
        if kind == "atom":
            return self.atom(text, offset)
        if kind == "string":
            return Atom(*self.where(offset), self.string(text, offset))
        if kind == "special":
            if text not in _SPECIALS:
                raise self.error(f"unknown special literal {text}", offset)
            return Atom(*self.where(offset), _SPECIALS[text])
        if kind == "quote":
            quoted = self.required_form(depth, offset, "'")
            quote = Atom(*self.where(offset), Symbol("quote"))
            return Seq(*self.where(offset), "list", [quote, quoted])
        if kind == "meta":
            return self.read_meta(offset, depth)
        if kind == "discard":
            self.required_form(depth, offset, "#_")
            following = self.read_form(depth)
            if following is None:
                raise self.error("#_ discards the last form: nothing left to read", offset)
            return following
        if kind == "close":
            raise self.error(f"unexpected closing {text!r}", offset)
        if kind == "badstring":
            raise self.error("unterminated string", offset)
        raise self.error(f"unexpected character {text!r}", offset)

    def required_form(self, depth: int, offset: int, what: str) -> Form:
        token = self.next_token()
        if token is None or token[0] == "close":
            if token is not None:
                self.pos = token[2]
            raise self.error(f"{what} must be followed by a form", offset)
        return self.form_from(token, depth)

    def read_seq(self, opener: str, offset: int, depth: int) -> Form:
        if depth > MAX_DEPTH:
            raise self.error(f"forms nested deeper than {MAX_DEPTH} levels", offset)
        closer = _CLOSERS[opener]
        items: list[Form] = []
        while True:
            token = self.next_token()
            if token is None:
                raise self.error(
                    f"unclosed {opener!r}: expected {closer!r} before end of input", offset)
            kind, text, at = token
            if kind == "close":
                if text != closer:
                    raise self.error(f"expected {closer!r} to close {opener!r}, found {text!r}", at)
                break
            items.append(self.form_from(token, depth))
        line, col = self.where(offset)
        if opener == "{" and len(items) % 2:
            raise self.error("a map needs an even number of forms", offset)
        if opener == "#(":
            return _anonymous_fn(line, col, items)
        return Seq(line, col, _KINDS[opener], items)

    def read_meta(self, offset: int, depth: int) -> Form:
        meta_form = self.required_form(depth, offset, "^")
        if isinstance(meta_form, Atom) and meta_form.value is Keyword("delegation"):
            return HintForm(*self.where(offset), self.read_hint(offset, depth))
        if isinstance(meta_form, Atom) and isinstance(meta_form.value, Keyword):
            meta = Map({meta_form.value: True})
        elif isinstance(meta_form, Seq) and meta_form.kind == "map":
            meta = form_to_value(meta_form)
        else:
            raise self.error("metadata must be a keyword or a map", offset)
        target = self.required_form(depth, offset, "metadata")
        if isinstance(target, HintForm):
            raise self.error("metadata cannot apply to a delegation hint", offset)
        target.meta = Map({**(target.meta or {}), **meta})
        return target

    def read_hint(self, offset: int, depth: int) -> DelegationHint:
        form = self.required_form(depth, offset, "^:delegation")
        if isinstance(form, Seq) and form.kind == "map":
            return _hint_from_map(form_to_value(form), self.error, offset)
        if isinstance(form, Atom) and isinstance(form.value, Keyword):
            kind = form.value.name
            if kind == "local":
                return DelegationHint(HintKind.LOCAL)
            if kind in ("local-model", "remote"):
                target = self.required_form(depth, offset, f":{kind}")
                if not (isinstance(target, Atom) and isinstance(target.value, str)):
                    raise self.error(f"^:delegation :{kind} needs a string id", offset)
                return DelegationHint(HintKind(kind), target.value)
        raise self.error(
            "^:delegation takes :local, :local-model \"id\", :remote \"id\" or a map", offset
        )

    def atom(self, text: str, offset: int) -> Atom:
        line, col = self.where(offset)
        if text in _LITERAL_WORDS:
            return Atom(line, col, _LITERAL_WORDS[text])
        if text[0] == ":":
            return Atom(line, col, self.keyword(text, offset))
        number = self.number(text, offset)
        if number is not None:
            return Atom(line, col, number)
        for pattern, tag in ((_UUID, "uuid"), (_TIMESTAMP, "timestamp"), (_RESOURCE, "resource")):
            if pattern.fullmatch(text):
                return Atom(line, col, TaggedLiteral(tag, text))
        name, _, annotation = text.partition(":")
        if not _NAME.fullmatch(name) or (annotation == "" and text.endswith(":")):
            raise self.error(f"invalid symbol or number {text!r}", offset)
        if annotation and not _NAME.fullmatch(annotation):
            raise self.error(f"invalid type annotation in {text!r}", offset)
        return Atom(line, col, Symbol(name), annotation or None)

    def keyword(self, text: str, offset: int) -> Keyword:
        name = text[1:]
        if not name or name.startswith(":") or name.endswith("/") or ":" in name:
            raise self.error(f"invalid keyword {text!r}", offset)
        return Keyword(name)

    def number(self, text: str, offset: int) -> int | float | None:
        if not (text[0].isdigit() or (text[0] in "+-." and len(text) > 1 and text[1].isdigit())):
            return None
        if _INT.fullmatch(text):
            return int(text)
        if _FLOAT.fullmatch(text):
            return float(text)
        radix = _RADIX.fullmatch(text)
        if radix:
            sign, base, digits = radix.groups()
            try:
                value = int(digits, _RADIXES[base.lower()])
            except ValueError:
                raise self.error(f"invalid base-{_RADIXES[base.lower()]} integer {text!r}", offset)
            return -value if sign == "-" else value
        ratio = _RATIO.fullmatch(text)
        if ratio:
            numerator, denominator = int(ratio.group(1)), int(ratio.group(2))
            if denominator == 0:
                raise self.error(f"ratio with zero denominator {text!r}", offset)
            return numerator / denominator
        if _UUID.fullmatch(text) or _TIMESTAMP.fullmatch(text):
            return None
        raise self.error(f"invalid number {text!r}", offset)

    def string(self, text: str, offset: int) -> str:
        body = text[1:-1]
        if "\\" not in body:
            return body
        out: list[str] = []
        i = 0
        while i < len(body):
            ch = body[i]
            if ch != "\\":
                out.append(ch)
                i += 1
                continue
            esc = body[i + 1]
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
                i += 2
            elif esc == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
            else:
                raise self.error(f"unknown escape \\{esc} in string", offset + 1 + i)
        return "".join(out)

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
            kind, text, _ = token
            if kind == "badstring":  # everything after an unterminated quote is its text
                self.pos = len(self.text)
                return
            if kind == "open":
                depth += 1
            elif kind == "close":
                depth -= 1
            if depth <= 0 and kind not in ("meta", "quote", "discard"):
                return


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
        if isinstance(form, Seq):
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


def form_to_value(form: Form) -> Any:
    """The value a quoted form denotes: symbols stay symbols, collections become values."""
    if isinstance(form, Atom):
        return form.value
    if isinstance(form, HintForm):
        raise RtfsSyntaxError("a delegation hint is not a value", form.line, form.col)
    items = [form_to_value(item) for item in form.items]
    if form.kind == "list":
        return RList(items)
    if form.kind == "vector":
        return tuple(items)
    if form.kind == "map":
        return Map(zip(items[0::2], items[1::2]))
    return frozenset(items)


def read(text: str) -> list[Form]:
    """Read every top-level form of `text`; raises the first `RtfsSyntaxError`."""
    forms = []
    for item in read_each(text):
        if isinstance(item, RtfsSyntaxError):
            raise item
        forms.append(item)
    return forms


def read_each(text: str) -> Iterator[Form | RtfsSyntaxError]:
    """Yield each top-level form, or the syntax error standing in its place, then go on."""
    for item, _, _ in read_spans(text):
        yield item


def read_spans(text: str) -> Iterator[tuple[Form | RtfsSyntaxError, int, int]]:
    """Like `read_each`, with the start and end offsets of the text each item came from."""
    reader = _Reader(text)
    while True:
        start = reader.pos
        token = None
        try:
            token = reader.peek_token()
            if token is None:
                return
            start = token[2]
            form = reader.read_form()
        except RtfsSyntaxError as err:
            if token is not None and token[0] == "close":
                reader.pos = start + 1
            else:
                reader.skip_to_form_end(start)
            yield err, start, reader.pos
            continue
        if form is None:
            return
        yield form, start, reader.pos
