"""Printer: values back in RTFS notation.

`to_readable` gives text the reader reads back as an equal value (strings quoted and escaped,
always on one line); `to_display` is what `str` and `println` show (strings bare at top level).
"""

from __future__ import annotations

import decimal
import math
from typing import Any

from rtfs.deadline import checked
from rtfs.values import Function, Keyword, Map, RList, Symbol, TaggedLiteral, set_items

_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", '"': '\\"', "\\": "\\\\", "\0": "\\0",
            "\b": "\\b", "\f": "\\f"}
_MAX_DEPTH = 200
_BIG = 10**4000  # CPython refuses str() of ints beyond 4300 digits; decimal has no such limit
_DIGITS = decimal.Context(prec=decimal.MAX_PREC)


def int_to_text(value: int) -> str:
    """Decimal digits of any integer (str() refuses the very long ones)."""
    return str(value) if -_BIG < value < _BIG else str(decimal.Decimal(value))


def int_from_text(text: str) -> int:
    """The integer written in decimal `text` (int() refuses the very long ones)."""
    if len(text) < 4000:
        return int(text)
    return int(_DIGITS.create_decimal(text.strip()))


def to_readable(value: Any) -> str:
    """RTFS text for `value`, on one line."""
    out: list[str] = []
    _write(value, out, 0)
    return "".join(out)


class _Full(Exception):
    pass


class _Bounded(list):
    """An output buffer that stops the printer once `limit` characters are written."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.left = limit

    def append(self, text: str) -> None:
        super().append(text)
        self.left -= len(text)
        if self.left < 0:
            raise _Full


def preview(value: Any, limit: int = 120) -> str:
    """`to_readable(value)` cut to `limit` characters, without printing the rest of a large
    value first."""
    out = _Bounded(limit)
    try:
        _write(value, out, 0)
    except _Full:
        return "".join(out)[: limit - 3] + "..."
    return "".join(out)


def to_readable_within(value: Any, max_chars: int) -> str | None:
    """`to_readable(value)` when it is at most `max_chars` characters long, else None
    (found without printing the rest of a large value)."""
    out = _Bounded(max_chars)
    try:
        _write(value, out, 0)
    except _Full:
        return None
    return "".join(out)


def to_display(value: Any) -> str:
    """Text for `str`/`println`: a string is itself, anything else as `to_readable`."""
    return value if type(value) is str else to_readable(value)


def format_float(value: float) -> str:
    if math.isnan(value):
        return "##NaN"
    if math.isinf(value):
        return "##Inf" if value > 0 else "##-Inf"
    text = repr(value)
    return text if any(c in text for c in ".en") else text + ".0"


def _write(value: Any, out: list[str], depth: int) -> None:
    if depth > _MAX_DEPTH:
        out.append("...")
        return
    kind = type(value)
    if value is None:
        out.append("nil")
    elif kind is bool:
        out.append("true" if value else "false")
    elif kind is int:
        out.append(str(value) if -_BIG < value < _BIG else int_to_text(value))
    elif kind is float:
        out.append(format_float(value))
    elif kind is str:
        out.append('"' + "".join(_ESCAPES.get(c, c) for c in value) + '"')
    elif kind is Keyword or kind is Symbol:
        out.append(repr(value))
    elif kind is tuple or kind is RList:
        brackets = "[]" if kind is tuple else "()"
        _write_items(value, out, depth, brackets[0], brackets[1])
    elif isinstance(value, Map):
        out.append("{")
        for i, (k, v) in enumerate(checked(value.items())):
            if i:
                out.append(" ")
            _write(k, out, depth + 1)
            out.append(" ")
            _write(v, out, depth + 1)
        out.append("}")
    elif kind is frozenset:
        _write_items(sorted(set_items(value), key=_sort_key), out, depth, "#{", "}")
    elif kind is TaggedLiteral:
        out.append(value.text)
    elif isinstance(value, (Function, BaseException)):
        out.append(repr(value))
    else:
        out.append(f"#<{type(value).__name__}>")


def _write_items(items: Any, out: list[str], depth: int, opener: str, closer: str) -> None:
    out.append(opener)
    for i, item in enumerate(checked(items)):
        if i:
            out.append(" ")
        _write(item, out, depth + 1)
    out.append(closer)


def _sort_key(value: Any) -> tuple[int, Any, str]:
    """Sets print in a stable order whatever their hash order: numbers by value first."""
    if type(value) in (int, float) and not math.isnan(value):
        return (0, value, "")
    return (1, 0, type(value).__name__ + to_readable(value))
