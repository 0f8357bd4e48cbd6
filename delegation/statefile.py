"""The engine's state files: one format for every cache that outlives a run.

A state file is canonical msgpack `[format, kind, rows]`, written atomically (a crash leaves
the old file or the new one, never half of one). Reading names the file and what is wrong
with it in one error, so that the runtime can set a corrupt file aside and go on (see
`Runtime._restore`). The L1 plans, the learner's outcomes, the L2 entries and the L3 tables
each describe their rows; the envelope, the reading and the errors are here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgpack

from storage import atomic_write

Row = TypeVar("Row")
ErrorType = Callable[[str, str], Exception]  # (path, reason) -> the holder's error


@dataclass(frozen=True)
class StateFile:
    """One kind of state file.

    Args:
        kind: the name inside the file (`"rtfs-l1-plans"`, ...): a file of another kind is
            refused rather than misread.
        format: the version of its rows.
        what: how errors name it ("L1 plan cache", ...).
        error: the holder's error type, called with (path, reason).
    """

    kind: str
    format: int
    what: str
    error: ErrorType

    def write(self, path: str | Path, rows: list[Any]) -> None:
        """Write `rows` atomically; raises the holder's error if a row cannot be encoded."""
        try:
            data = msgpack.packb([self.format, self.kind, rows], use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as e:
            raise self.error(str(path), f"cannot encode the {self.what}: {e}") from e
        atomic_write(Path(path), data)

    def read(self, path: str | Path, row: Callable[[Any], Row]) -> list[Row] | None:
        """The rows of the file at `path`, each made by `row` (None if there is no file).

        Raises:
            the holder's error: the file cannot be read, is not this kind of file, or a row
                is malformed (`row` raising any exception); the message names the row.
        """
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise self.error(str(path), f"cannot read: {e.strerror or e}") from e
        rows = self._rows(data, str(path))
        out = []
        for i, item in enumerate(rows):
            try:
                out.append(row(item))
            except Exception as e:  # any malformed row is one clear error naming the file
                raise self.error(str(path), f"corrupt {self.what}: row {i}: {e}") from None
        return out

    def _rows(self, data: bytes, path: str) -> list[Any]:
        try:
            doc = msgpack.unpackb(data, raw=False, strict_map_key=True)
        except (ValueError, msgpack.UnpackException) as e:
            raise self.error(path, f"corrupt {self.what}: not msgpack: {e}") from None
        if not (isinstance(doc, list) and len(doc) == 3 and doc[1] == self.kind):
            raise self.error(path, f"not a state file of kind {self.kind!r} (expected "
                                   f"[{self.format}, {self.kind!r}, rows])")
        if doc[0] != self.format:
            raise self.error(path, f"{self.what} format {doc[0]!r} is not {self.format}")
        if not isinstance(doc[2], list):
            raise self.error(path, f"corrupt {self.what}: rows must be a list")
        return doc[2]
