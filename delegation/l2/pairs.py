"""Labelled pairs files: one JSON object per line, `{"a": ..., "b": ..., "same": true|false}`
with an optional `"fn"` (the function the pair belongs to). Blank lines are skipped; other
keys (an id, a category) are allowed and ignored."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from delegation.l2.errors import PairsFileError


@dataclass(frozen=True, slots=True)
class Pair:
    """Two inputs and whether one answer is right for both."""

    a: str
    b: str
    same: bool
    fn: str | None = None


def load_pairs(path: str | Path) -> list[Pair]:
    """Read a pairs file.

    Raises:
        PairsFileError: unreadable, not UTF-8, a line that is not a valid pair (named by its
            line number), or no pairs at all.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise PairsFileError(str(path), None, f"not UTF-8 text: {e.reason}") from e
    except OSError as e:
        raise PairsFileError(str(path), None, f"cannot read: {e.strerror or e}") from e
    pairs = list(parse_pairs(text.splitlines(), str(path)))
    if not pairs:
        raise PairsFileError(str(path), None, "no pairs in the file")
    return pairs


def parse_pairs(lines: Iterable[str], source: str = "<pairs>") -> Iterable[Pair]:
    """Parse pair lines; errors name `source` and the 1-based line."""
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield _pair(line, source, number)


def _pair(line: str, source: str, number: int) -> Pair:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as e:
        raise PairsFileError(source, number, f"not JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(data, dict):
        raise PairsFileError(source, number, "expected an object {\"a\", \"b\", \"same\"}")
    for key in ("a", "b", "same"):
        if key not in data:
            raise PairsFileError(source, number, f"missing key {key!r}")
    for key in ("a", "b"):
        if not isinstance(data[key], str):
            raise PairsFileError(source, number, f"{key!r} must be a string")
    if not isinstance(data["same"], bool):
        raise PairsFileError(source, number, "'same' must be true or false")
    fn = data.get("fn")
    if fn is not None and (not isinstance(fn, str) or not fn):
        raise PairsFileError(source, number, "'fn' must be a non-empty string")
    return Pair(data["a"], data["b"], data["same"], fn)
