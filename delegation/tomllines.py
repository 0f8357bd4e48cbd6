"""Map TOML key paths to the lines that define them.

`tomllib` returns plain dicts with no positions, so config errors could not say where the
bad key is. `KeyLines` scans the same text once more and records, for every key path, the
1-based line where it is defined: table headers, `[[array]]` entries, dotted and quoted keys,
keys inside inline tables and items of arrays (as integer path segments). It assumes text that
`tomllib` already accepted; it does not validate.

`TableReader` reads typed values out of the parsed tables and raises `ConfigError`s that name
the file, the dotted key path and that line.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, TypeVar

from delegation.errors import ConfigError

KeyPath = tuple[str | int, ...]
E = TypeVar("E", bound=StrEnum)

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_SCALAR_END = frozenset(",]}#\n")


class KeyLines:
    """The line of every key path in a TOML document."""

    def __init__(self, text: str) -> None:
        self._explicit: dict[KeyPath, int] = {}
        self._implicit: dict[KeyPath, int] = {}
        _Scanner(text, self).run()

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """Return the line defining `path`, else that of its nearest recorded ancestor."""
        key = tuple(path)
        while True:
            line = self._explicit.get(key) or self._implicit.get(key)
            if line is not None or not key:
                return line
            key = key[:-1]

    def exact_line(self, path: Sequence[str | int]) -> int | None:
        """Return the line defining exactly `path`, or None."""
        key = tuple(path)
        return self._explicit.get(key) or self._implicit.get(key)

    def define(self, path: KeyPath, line: int) -> None:
        """Record where `path` is defined, and its unrecorded ancestors as implied there."""
        self._explicit[path] = line
        for i in range(1, len(path)):
            self._implicit.setdefault(path[:i], line)


class _Scanner:
    def __init__(self, text: str, out: KeyLines) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.out = out
        self.array_counts: dict[KeyPath, int] = {}

    def run(self) -> None:
        table: KeyPath = ()
        while self._skip_space(newlines=True) is not None:
            if self.text.startswith("[[", self.pos):
                table = self._array_table_header()
            elif self.text[self.pos] == "[":
                table = self._table_header()
            else:
                self._key_value(table)

    # --- structure ---------------------------------------------------------------------

    def _array_table_header(self) -> KeyPath:
        line = self.line
        self.pos += 2
        key = self._key()
        self._skip_space()
        self.pos += 2  # "]]"
        path = self._resolve(key[:-1]) + (key[-1],)
        index = self.array_counts.get(path, 0)
        self.array_counts[path] = index + 1
        if index == 0:
            self.out.define(path, line)
        self.out.define(path + (index,), line)
        return path + (index,)

    def _table_header(self) -> KeyPath:
        line = self.line
        self.pos += 1
        path = self._resolve(self._key())
        self._skip_space()
        self.pos += 1  # "]"
        self.out.define(path, line)
        return path

    def _resolve(self, keys: Sequence[str]) -> KeyPath:
        """Insert the current index after every prefix that names an array of tables."""
        path: KeyPath = ()
        for key in keys:
            path += (key,)
            count = self.array_counts.get(path)
            if count:
                path += (count - 1,)
        return path

    def _key_value(self, base: KeyPath) -> None:
        line = self.line
        path = base + tuple(self._key())
        self.out.define(path, line)
        self._skip_space()
        self.pos += 1  # "="
        self._skip_space()
        self._value(path)

    def _value(self, path: KeyPath) -> None:
        ch = self.text[self.pos]
        if ch == "{":
            self._inline_table(path)
        elif ch == "[":
            self._array(path)
        elif ch in "\"'":
            self._string()
        else:
            self._scalar()

    def _inline_table(self, path: KeyPath) -> None:
        self.pos += 1
        while True:
            self._skip_space(newlines=True)
            if self.text[self.pos] == "}":
                self.pos += 1
                return
            if self.text[self.pos] == ",":
                self.pos += 1
                continue
            self._key_value(path)

    def _array(self, path: KeyPath) -> None:
        self.pos += 1
        index = 0
        while True:
            self._skip_space(newlines=True)
            ch = self.text[self.pos]
            if ch == "]":
                self.pos += 1
                return
            if ch == ",":
                self.pos += 1
                index += 1
                continue
            self.out.define(path + (index,), self.line)
            self._value(path + (index,))

    # --- tokens ------------------------------------------------------------------------

    def _key(self) -> list[str]:
        parts: list[str] = []
        while True:
            self._skip_space()
            ch = self.text[self.pos]
            if ch == '"':
                parts.append(tomllib.loads("k = " + self._string())["k"])
            elif ch == "'":
                parts.append(self._string()[1:-1])
            else:
                parts.append(self._bare_key())
            self._skip_space()
            if self.pos < len(self.text) and self.text[self.pos] == ".":
                self.pos += 1
                continue
            return parts

    def _bare_key(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _BARE:
            self.pos += 1
        if self.pos == start:
            raise ValueError(f"line {self.line}: expected a key")
        return self.text[start : self.pos]

    def _string(self) -> str:
        """Consume a string token of any of the four kinds and return its raw text."""
        start = self.pos
        quote = self.text[self.pos]
        if self.text.startswith(quote * 3, self.pos):
            self._multiline_string(quote)
        else:
            self.pos += 1
            while self.text[self.pos] != quote:
                self.pos += 2 if quote == '"' and self.text[self.pos] == "\\" else 1
            self.pos += 1
        return self.text[start : self.pos]

    def _multiline_string(self, quote: str) -> None:
        self.pos += 3
        while not self.text.startswith(quote * 3, self.pos):
            ch = self.text[self.pos]
            if ch == "\n":
                self.line += 1
            step = 2 if quote == '"' and ch == "\\" else 1
            if step == 2 and self.text[self.pos + 1] == "\n":
                self.line += 1
            self.pos += step
        self.pos += 3
        # A closing delimiter may be preceded by up to two quotes that belong to the content.
        for _ in range(2):
            if self.pos < len(self.text) and self.text[self.pos] == quote:
                self.pos += 1

    def _scalar(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] not in _SCALAR_END:
            self.pos += 1

    def _skip_space(self, newlines: bool = False) -> int | None:
        """Skip blanks (and newlines and comments if asked); return the position, None at end."""
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch in " \t\r":
                self.pos += 1
            elif newlines and ch == "\n":
                self.line += 1
                self.pos += 1
            elif newlines and ch == "#":
                while self.pos < len(text) and text[self.pos] != "\n":
                    self.pos += 1
            else:
                return self.pos
        return None


# --- typed reading with positions ---------------------------------------------------------

_REQUIRED: Any = object()
_TOML_TYPES = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a float"),
    (str, "a string"),
    (list, "an array"),
    (dict, "a table"),
)


def toml_type(value: object) -> str:
    """Name a parsed TOML value's type as TOML does ("a string", "an integer", ...)."""
    for python_type, name in _TOML_TYPES:
        if isinstance(value, python_type):
            return name
    return "a date/time"


class TableReader:
    """Reads typed values out of parsed TOML tables; every error names file, key and line."""

    def __init__(self, source: str, lines: KeyLines) -> None:
        self.source = source
        self.lines = lines

    def error(self, path: KeyPath, message: str) -> ConfigError:
        """Return a `ConfigError` for `path`, located at its line (or its table's)."""
        return ConfigError(message, self.source, path, self.lines.line_of(path))

    def table(self, value: object, path: KeyPath) -> dict[str, Any]:
        """Return `value` if it is a table."""
        if not isinstance(value, dict):
            raise self.error(path, f"must be a table, not {toml_type(value)}")
        return value

    def check_keys(self, table: dict[str, Any], path: KeyPath, allowed: Sequence[str]) -> None:
        """Reject any key of `table` not in `allowed`, suggesting the closest one."""
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise self.error(
                    path + (key,), f"unknown key (allowed: {', '.join(allowed)})" + hint
                )

    def _get(self, table: dict[str, Any], path: KeyPath, key: str, default: Any) -> Any:
        if key in table:
            return table[key]
        if default is _REQUIRED:
            raise self.error(path, f"missing required key {key!r}")
        return default

    def expect_str(self, value: object, path: KeyPath) -> str:
        """Return `value` if it is a string."""
        if not isinstance(value, str):
            raise self.error(path, f"must be a string, not {toml_type(value)}")
        return value

    def string(
        self, table: dict[str, Any], path: KeyPath, key: str, default: Any = _REQUIRED
    ) -> Any:
        """Return the string at `key`, or `default` when absent (required if not given)."""
        value = self._get(table, path, key, default)
        if value is default and key not in table:
            return value
        return self.expect_str(value, path + (key,))

    def number(
        self,
        table: dict[str, Any],
        path: KeyPath,
        key: str,
        default: Any = _REQUIRED,
        *,
        positive: bool = False,
        maximum: float | None = None,
    ) -> float:
        """Return a finite number >= 0 (> 0 if `positive`, <= `maximum` if given) as a float."""
        value = self._get(table, path, key, default)
        if key not in table:
            return value  # type: ignore[no-any-return]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(path + (key,), f"must be a number, not {toml_type(value)}")
        if not math.isfinite(value):
            raise self.error(path + (key,), "must be a finite number")
        if value < 0 or (positive and value == 0):
            raise self.error(path + (key,), f"must be {'> 0' if positive else '>= 0'}, not {value}")
        if maximum is not None and value > maximum:
            raise self.error(path + (key,), f"must be <= {maximum:g}, not {value:g}")
        return float(value)

    def integer(
        self,
        table: dict[str, Any],
        path: KeyPath,
        key: str,
        default: Any = _REQUIRED,
        *,
        minimum: int = 0,
        maximum: int | None = None,
    ) -> int:
        """Return an integer >= `minimum` (and <= `maximum` if given)."""
        value = self._get(table, path, key, default)
        if key not in table:
            return value  # type: ignore[no-any-return]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(path + (key,), f"must be an integer, not {toml_type(value)}")
        if value < minimum:
            raise self.error(path + (key,), f"must be >= {minimum}, not {value}")
        if maximum is not None and value > maximum:
            raise self.error(path + (key,), f"must be <= {maximum}, not {value}")
        return value

    def boolean(
        self, table: dict[str, Any], path: KeyPath, key: str, default: Any = _REQUIRED
    ) -> bool:
        """Return a boolean."""
        value = self._get(table, path, key, default)
        if key in table and not isinstance(value, bool):
            raise self.error(path + (key,), f"must be true or false, not {toml_type(value)}")
        return value  # type: ignore[no-any-return]

    def string_list(
        self, table: dict[str, Any], path: KeyPath, key: str, default: Any = _REQUIRED
    ) -> tuple[str, ...]:
        """Return an array of strings as a tuple."""
        value = self._get(table, path, key, default)
        if key not in table:
            return tuple(value)
        if not isinstance(value, list):
            raise self.error(path + (key,), f"must be an array of strings, not {toml_type(value)}")
        for i, item in enumerate(value):
            self.expect_str(item, path + (key, i))
        return tuple(value)

    def choice(
        self,
        table: dict[str, Any],
        path: KeyPath,
        key: str,
        enum: type[E],
        default: Any = _REQUIRED,
    ) -> E:
        """Return the member of the StrEnum `enum` named by the string at `key`."""
        value = self._get(table, path, key, default)
        if key not in table:
            return value  # type: ignore[no-any-return]
        text = self.expect_str(value, path + (key,))
        try:
            return enum(text)
        except ValueError:
            known = ", ".join(repr(m.value) for m in enum)  # type: ignore[attr-defined]
            raise self.error(path + (key,), f"unknown {key} {text!r} (known: {known})") from None
