"""The global environment: a dict that reports its changes.

Translated code (rtfs.fast) resolves each global call site once and keeps the answer until
the environment or the router changes. Reads stay plain dict reads; every way of changing the
dict bumps `version` and calls `changed()` (the VM forgets resolved call sites there).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self


class Globals(dict):
    """A `dict` of global bindings whose `version` changes whenever a binding does."""

    __slots__ = ("changed", "version")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.version = 0
        self.changed: Callable[[], None] = _nothing

    def _bump(self) -> None:
        self.version += 1
        self.changed()

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self._bump()

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self._bump()

    def pop(self, *args: Any) -> Any:
        try:
            return super().pop(*args)
        finally:
            self._bump()

    def popitem(self) -> tuple[Any, Any]:
        try:
            return super().popitem()
        finally:
            self._bump()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        try:
            return super().setdefault(key, default)
        finally:
            self._bump()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._bump()

    def clear(self) -> None:
        super().clear()
        self._bump()

    def __ior__(self, other: Any) -> Self:  # type: ignore[misc,override]
        self.update(other)
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (Globals, (dict(self),))


def _nothing() -> None:
    pass
