"""Plumbing the built-in stores share: use-after-close checks and pickling by configuration.

Stores cross process boundaries (Ray tasks and actors, process pools): a store pickles as the
arguments that built it, never as its connections, and the copy opens its own clients on
first use. A closed store refuses every call with `StoreClosed` and cannot be pickled.
"""

from __future__ import annotations

from typing import Any

from storage.errors import StoreClosed


def rebuild(cls: type, kwargs: dict[str, Any]) -> Any:
    """Unpickle a store: call its class with the keyword arguments it was pickled with."""
    return cls(**kwargs)


class StoreBase:
    """Closed flag and pickling for a store; subclasses implement `_init_kwargs`."""

    uri: str
    _closed: bool = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed(self.uri)

    def _init_kwargs(self) -> dict[str, Any]:
        """The keyword arguments that rebuild an equivalent, freshly opened store."""
        raise NotImplementedError

    def __reduce__(self) -> tuple[Any, ...]:
        self._check_open()
        return rebuild, (type(self), self._init_kwargs())

    @property
    def closed(self) -> bool:
        """True once `close()` was called."""
        return self._closed

    def close(self) -> None:
        """Release what the store holds; later calls raise `StoreClosed`. Idempotent."""
        self._closed = True
