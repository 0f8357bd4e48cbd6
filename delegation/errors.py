"""The delegation error hierarchy.

Every error derives from `DelegationError` and from the built-in exception that matches its
meaning, so callers can catch either. Every constructor passes all of its arguments to
`super().__init__`, so each error survives pickling (it crosses Ray and process pools) and
arrives catchable by type; the message is built in `__str__` from those arguments.

Errors that also derive from `OSError` (`ConnectionError`, `TimeoutError`, `PermissionError`)
take exactly two arguments: `OSError` keeps a third one as a file name and drops it from
`args`, which would break pickling.
"""

from __future__ import annotations

import re

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def format_key_path(path: tuple[str | int, ...] | str | None) -> str:
    """Render a key path as TOML would spell it: `delegation.static_routes."ai-*"`."""
    if path is None:
        return ""
    if isinstance(path, str):
        return path
    parts: list[str] = []
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif _BARE_KEY.fullmatch(part):
            parts.append(f".{part}")
        else:
            escaped = part.replace("\\", "\\\\").replace('"', '\\"')
            parts.append(f'."{escaped}"')
    return "".join(parts).lstrip(".")


class DelegationError(Exception):
    """Root of every error the `delegation` package raises."""


class UsageError(DelegationError, ValueError):
    """A command line that cannot be run as given (exit status 2)."""


class ConfigError(DelegationError, ValueError):
    """A configuration (or rules) file that cannot be used: names the file, key path and line.

    `key` is a tuple of path segments (strings for keys, ints for array indices) or an
    already-formatted string; `line` is 1-based, or None when it is not known.
    """

    def __init__(
        self,
        message: str,
        file: str | None = None,
        key: tuple[str | int, ...] | str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message, file, key, line)
        self.message = message
        self.file = file
        self.key = key
        self.line = line

    @property
    def key_path(self) -> str:
        """The dotted key path as TOML spells it, or "" when the error has no key."""
        return format_key_path(self.key)

    def __str__(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        key = self.key_path
        return f"{where}: {key}: {self.message}" if key else f"{where}: {self.message}"


class TargetError(DelegationError, ValueError):
    """A value that is not a valid tagged `ExecTarget`."""

    def __init__(self, value: object, reason: str) -> None:
        super().__init__(value, reason)
        self.value = value
        self.reason = reason

    def __str__(self) -> str:
        return f"invalid execution target {self.value!r}: {self.reason}"


class MetadataError(DelegationError, ValueError):
    """Delegation metadata with a missing, unknown or out-of-range key."""

    def __init__(self, key: str, value: object, reason: str) -> None:
        super().__init__(key, value, reason)
        self.key = key
        self.value = value
        self.reason = reason

    def __str__(self) -> str:
        return f"delegation metadata {self.key!r}={self.value!r}: {self.reason}"


class PlanCacheError(DelegationError, ValueError):
    """An L1 plan cache file that cannot be written or read back."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"L1 plan cache file {self.path}: {self.reason}"


class ProviderUnavailable(DelegationError, ConnectionError):
    """A provider that cannot serve now: not configured (no key), down, refused, unhealthy."""

    def __init__(self, provider_id: str, reason: str) -> None:
        super().__init__(provider_id, reason)
        self.provider_id = provider_id
        self.reason = reason

    def __str__(self) -> str:
        return f"provider {self.provider_id} unavailable: {self.reason}"


class ProviderTimeout(ProviderUnavailable, TimeoutError):
    """A provider that did not answer within its `timeout_s`."""

    def __str__(self) -> str:
        return f"provider {self.provider_id} timed out: {self.reason}"


class ProviderError(DelegationError, RuntimeError):
    """A provider that answered with an error (HTTP 4xx/5xx, exit status, bad response)."""

    def __init__(
        self, provider_id: str, message: str, status: int | None = None, body: str = ""
    ) -> None:
        super().__init__(provider_id, message, status, body)
        self.provider_id = provider_id
        self.message = message
        self.status = status
        self.body = body

    def __str__(self) -> str:
        status = f" (status {self.status})" if self.status is not None else ""
        body = f": {self.body}" if self.body else ""
        return f"provider {self.provider_id} failed{status}: {self.message}{body}"


class ProviderInputError(DelegationError, TypeError):
    """A request a provider cannot take: a non-string prompt or an unknown parameter."""

    def __init__(self, provider_id: str, reason: str) -> None:
        super().__init__(provider_id, reason)
        self.provider_id = provider_id
        self.reason = reason

    def __str__(self) -> str:
        return f"bad request to provider {self.provider_id}: {self.reason}"


class UnknownProvider(DelegationError, KeyError):
    """No provider is registered for this target or id."""

    def __init__(self, target: str, known: tuple[str, ...] = ()) -> None:
        super().__init__(target, known)
        self.target = target
        self.known = known

    def __str__(self) -> str:
        known = ", ".join(self.known) if self.known else "none"
        return f"no provider for {self.target} (registered: {known})"


class UnknownCapability(DelegationError, KeyError):
    """No provider offers this capability id."""

    def __init__(self, capability: str, known: tuple[str, ...] = ()) -> None:
        super().__init__(capability, known)
        self.capability = capability
        self.known = known

    def __str__(self) -> str:
        known = ", ".join(self.known) if self.known else "none"
        return f"no provider offers capability {self.capability!r} (known: {known})"


class SecurityViolation(DelegationError, PermissionError):
    """A call the security policy forbids: e.g. a sensitive call that has no local target."""

    def __init__(self, symbol: str, reason: str) -> None:
        super().__init__(symbol, reason)
        self.symbol = symbol
        self.reason = reason

    def __str__(self) -> str:
        return f"call {self.symbol} refused by security policy: {self.reason}"


class CallUnavailable(DelegationError, ConnectionError):
    """A call with no target that can serve it now (and no usable fallback)."""

    def __init__(self, symbol: str, reason: str) -> None:
        super().__init__(symbol, reason)
        self.symbol = symbol
        self.reason = reason

    def __str__(self) -> str:
        return f"call {self.symbol} cannot run: {self.reason}"


class StorageFailure(DelegationError, OSError):
    """L4 storage failed while a call needed it (the store's own error is the cause)."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(what, reason)
        self.what = what
        self.reason = reason

    def __str__(self) -> str:
        return f"L4 storage failed for {self.what}: {self.reason}"


ALL_ERRORS: tuple[type[DelegationError], ...] = (
    DelegationError,
    UsageError,
    ConfigError,
    TargetError,
    MetadataError,
    PlanCacheError,
    ProviderUnavailable,
    ProviderTimeout,
    ProviderError,
    ProviderInputError,
    UnknownProvider,
    UnknownCapability,
    SecurityViolation,
    CallUnavailable,
    StorageFailure,
)
