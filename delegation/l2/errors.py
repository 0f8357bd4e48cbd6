"""Errors of the L2 semantic cache and the L3 contextual cache.

Each derives from `DelegationError` and the built-in that matches its meaning, and passes all
of its constructor arguments to `super().__init__`, so it pickles and arrives catchable by type.
"""

from __future__ import annotations

from delegation.errors import DelegationError


class EmbedderUnavailable(DelegationError, RuntimeError):
    """An embedding model that cannot be loaded: package missing, weights not as pinned."""

    def __init__(self, model_id: str, reason: str) -> None:
        super().__init__(model_id, reason)
        self.model_id = model_id
        self.reason = reason

    def __str__(self) -> str:
        return f"embedding model {self.model_id} unavailable: {self.reason}"


class EmbedderInputError(DelegationError, TypeError):
    """Something that is not a string was given to an embedder."""

    def __init__(self, model_id: str, reason: str) -> None:
        super().__init__(model_id, reason)
        self.model_id = model_id
        self.reason = reason

    def __str__(self) -> str:
        return f"embedding model {self.model_id}: {self.reason}"


class CalibrationError(DelegationError, ValueError):
    """Labelled pairs that cannot support a calibration (e.g. too few negatives)."""

    def __init__(self, namespace: str, reason: str) -> None:
        super().__init__(namespace, reason)
        self.namespace = namespace
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot calibrate namespace {self.namespace!r}: {self.reason}"


class PairsFileError(DelegationError, ValueError):
    """A labelled-pairs file that cannot be read: names the file and, when known, the line."""

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        super().__init__(path, line, reason)
        self.path = path
        self.line = line
        self.reason = reason

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.reason}"


class CacheStateError(DelegationError, ValueError):
    """A state file of the L2/L3 caches (calibrations, contextual outcomes) that cannot be
    read or written."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"cache state file {self.path}: {self.reason}"


class ContextError(DelegationError, ValueError):
    """A call or run context with a bad key or value (`--context`, `^{:context ...}`)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(key, reason)
        self.key = key
        self.reason = reason

    def __str__(self) -> str:
        return f"context {self.key}: {self.reason}"


ALL_L2_ERRORS: tuple[type[DelegationError], ...] = (
    EmbedderUnavailable,
    EmbedderInputError,
    CalibrationError,
    PairsFileError,
    CacheStateError,
    ContextError,
)
