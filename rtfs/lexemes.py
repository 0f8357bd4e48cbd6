"""The atoms of RTFS text: numbers, symbols (with a type annotation), keywords, tagged
literals, and string escapes. Each function takes the text of one token and raises
`LexemeError` (with the offset of the fault inside the token) when it is not valid."""

from __future__ import annotations

import re

from rtfs.forms import TYPE_FOLLOWS
from rtfs.printer import int_from_text
from rtfs.values import Keyword, Symbol, TaggedLiteral

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "0": "\0", "b": "\b",
            "f": "\f"}
_ESCAPE = re.compile(r"\\(?:u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"
                     r"|u([0-9a-fA-F]{4})|(.))", re.DOTALL)
# Valid text and escapes, left to right, then the first backslash that starts no escape.
_BAD_ESCAPE = re.compile(r'(?:[^\\]++|\\[ntr"\\0bf]|\\u[0-9a-fA-F]{4})*+(\\.?)', re.DOTALL)
# Checked text (no unknown escape) up to the first \u escape of half a surrogate pair that
# is not followed by its other half.
_NO_LONE_SURROGATE = re.compile(
    r"(?:[^\\]++|\\[^u]|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    r"|\\u(?![dD][89a-fA-F])[0-9a-fA-F]{4})*+", re.DOTALL)
_INT = re.compile(r"[+-]?\d+")
_RADIX = re.compile(r"([+-]?)0([xXoObB])([0-9a-fA-F]+)")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*([eE][+-]?\d+)?|\d+[eE][+-]?\d+|\.\d+([eE][+-]?\d+)?)")
_RATIO = re.compile(r"([+-]?\d+)/(\d+)")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_RESOURCE = re.compile(r"resource://\S+")
_NAME = re.compile(r"[^\d:/][^:]*|/")
_VERSIONED = re.compile(r"[^\d:/][^:/]*:v\d+(\.\d+)*/[^:/]+")  # com.example:v1.0/api
_RADIXES = {"x": 16, "o": 8, "b": 2}


class LexemeError(Exception):
    """A token that is not valid; `at` is the offset of the fault inside the token."""

    def __init__(self, message: str, at: int = 0) -> None:
        super().__init__(message, at)
        self.message, self.at = message, at


def symbol(text: str) -> tuple[Symbol, str | None]:
    """A symbol and the type annotation written on it (`x:int`; `x:` when the type is the
    next form)."""
    if ":" not in text or _VERSIONED.fullmatch(text):
        if not _NAME.fullmatch(text) and not _VERSIONED.fullmatch(text):
            raise LexemeError(f"invalid symbol or number {text!r}")
        return Symbol(text), None
    name, _, annotation = text.partition(":")
    if not _NAME.fullmatch(name):
        raise LexemeError(f"invalid symbol or number {text!r}")
    if annotation == "":  # `x:` then the type as the next form
        return Symbol(name), TYPE_FOLLOWS
    if not _NAME.fullmatch(annotation):
        raise LexemeError(f"invalid type annotation in {text!r}")
    return Symbol(name), annotation


def keyword(text: str) -> Keyword:
    name = text[1:]
    if name == "":
        raise LexemeError("invalid keyword ':' (a lone ':' goes between a binding and its "
                          "type, as in [x : int])")
    if name.startswith(":") or name.endswith("/") or (
            ":" in name and not _VERSIONED.fullmatch(name)):
        raise LexemeError(f"invalid keyword {text!r}")
    return Keyword(name)


def number(text: str) -> int | float | None:
    """The number `text` writes; None when it is a timestamp or UUID instead."""
    if _INT.fullmatch(text):
        return int_from_text(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    radix = _RADIX.fullmatch(text)
    if radix:
        sign, base, digits = radix.groups()
        try:
            value = int(digits, _RADIXES[base.lower()])
        except ValueError:
            raise LexemeError(f"invalid base-{_RADIXES[base.lower()]} integer {text!r}") from None
        return -value if sign == "-" else value
    ratio = _RATIO.fullmatch(text)
    if ratio:
        numerator, denominator = int(ratio.group(1)), int(ratio.group(2))
        if denominator == 0:
            raise LexemeError(f"ratio with zero denominator {text!r}")
        return numerator / denominator
    if _UUID.fullmatch(text) or _TIMESTAMP.fullmatch(text):
        return None
    raise LexemeError(f"invalid number {text!r}")


def tagged(text: str) -> TaggedLiteral | None:
    """A uuid, timestamp or resource handle literal, kept as its text."""
    if len(text) < 12:
        return None
    for pattern, tag in ((_UUID, "uuid"), (_TIMESTAMP, "timestamp"), (_RESOURCE, "resource")):
        if pattern.fullmatch(text):
            return TaggedLiteral(tag, text)
    return None


def unescape(body: str) -> str:
    """The text of a string literal's body (between the quotes)."""
    bad = _BAD_ESCAPE.match(body)
    if bad is not None and bad.group(1):
        raise LexemeError(f"unknown escape {bad.group(1)} in string", bad.start(1))
    if "\\u" in body:
        return _ESCAPE.sub(_unicode_escape, body)
    return _replace_escapes(body)


def check_escapes(body: str) -> None:
    """Raise the `LexemeError` that `unescape(body)` raises, if any, without making the text
    (checking a long string costs no object per escape)."""
    bad = _BAD_ESCAPE.match(body)
    if bad is not None and bad.group(1):
        raise LexemeError(f"unknown escape {bad.group(1)} in string", bad.start(1))
    if "\\u" in body:
        fine = _NO_LONE_SURROGATE.match(body).end()  # type: ignore[union-attr]  # may be empty
        if fine < len(body):
            code = body[fine + 2:fine + 6]
            raise LexemeError(f"\\u{code} is half of a surrogate pair, not a character", fine)


# The characters \u escapes stand for, shared: a string of many escapes does not hold one
# object per escape while it is made (distinct characters are bounded: at most 2**16 kept).
_ESCAPED: dict[str, str] = {}


def _unicode_escape(match: re.Match[str]) -> str:
    escape = match.group()
    known = _ESCAPED.get(escape)
    if known is not None:
        return known
    char = _unicode_escape_char(match)
    if len(_ESCAPED) < 1 << 16:
        _ESCAPED[escape] = char
    return char


def _unicode_escape_char(match: re.Match[str]) -> str:
    high, low, code, char = match.groups()
    if high is not None:
        return chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + int(low, 16) - 0xDC00)
    if code is not None:
        if 0xD800 <= int(code, 16) <= 0xDFFF:
            raise LexemeError(f"\\u{code} is half of a surrogate pair, not a character",
                              match.start())
        return chr(int(code, 16))
    return _ESCAPES[char]


def _replace_escapes(body: str) -> str:
    """Resolve the one-character escapes of a string body (already checked) with a few
    whole-string replacements: linear, and no object per escape, however many there are."""
    placeholder = next(chr(c) for c in range(0xE000, 0x110000) if chr(c) not in body)
    body = body.replace("\\\\", placeholder)  # an escaped backslash escapes nothing after it
    for char, replacement in _ESCAPES.items():
        if char != "\\":
            body = body.replace("\\" + char, replacement)
    return body.replace(placeholder, "\\")
