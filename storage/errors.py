"""The storage error hierarchy.

Every error derives from `StorageError` and from the built-in exception that matches its
meaning, so callers can catch either. Every constructor passes all of its arguments to
`super().__init__`, so each error survives pickling (it crosses Ray and process pools) and
arrives catchable by type; the message is built in `__str__` from those arguments.
"""

from __future__ import annotations


class StorageError(Exception):
    """Root of every error the `storage` package raises."""


class InvalidBlobId(StorageError, ValueError):
    """A blob or record id that is not 32 lowercase hex digits (an xxh3_128 digest)."""

    def __init__(self, blob_id: object) -> None:
        super().__init__(blob_id)
        self.blob_id = blob_id

    def __str__(self) -> str:
        return f"invalid blob id {self.blob_id!r}: expected 32 lowercase hex digits (xxh3_128)"


class InvalidRecordGroup(StorageError, ValueError):
    """A record group name that is not `"<namespace>/<lowercase hex>"`."""

    def __init__(self, group: object) -> None:
        super().__init__(group)
        self.group = group

    def __str__(self) -> str:
        return f"invalid record group {self.group!r}: expected '<namespace>/<lowercase hex>'"


class BlobNotFound(StorageError, KeyError):
    """No blob with this id in the store (a `KeyError`, as for a mapping)."""

    def __init__(self, blob_id: str, store: str = "") -> None:
        super().__init__(blob_id, store)
        self.blob_id = blob_id
        self.store = store

    def __str__(self) -> str:
        where = f" in {self.store}" if self.store else ""
        return f"blob {self.blob_id} not found{where}"


class BlobCorrupted(StorageError, ValueError):
    """Stored bytes do not hash to their id; they are never returned."""

    def __init__(self, blob_id: str, actual_id: str, store: str = "") -> None:
        super().__init__(blob_id, actual_id, store)
        self.blob_id = blob_id
        self.actual_id = actual_id
        self.store = store

    def __str__(self) -> str:
        where = f" in {self.store}" if self.store else ""
        return f"blob {self.blob_id} is corrupted{where}: its bytes hash to {self.actual_id}"


class StorageUnavailable(StorageError, ConnectionError):
    """The backend cannot be reached or failed to answer (server down, timeout, I/O error)."""

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(store, reason)
        self.store = store
        self.reason = reason

    def __str__(self) -> str:
        return f"storage {self.store} unavailable: {self.reason}"


class StoreDown(StorageUnavailable):
    """The backend is down (refused, reset, timed out, unreachable): calls fail at once.

    Raised by the call that found the outage and by every call while the store's outage
    latch holds; `cause` is the failure that showed it. `store.outage` says until when.
    """

    def __init__(self, store: str, cause: str) -> None:
        super().__init__(store, cause)
        self.cause = cause

    def __str__(self) -> str:
        return (
            f"storage {self.store} is down: {self.cause} "
            "(calls fail at once for a while instead of waiting on it)"
        )


class StoreClosed(StorageError, ValueError):
    """A store used after `close()` (a `ValueError`, as for I/O on a closed file)."""

    def __init__(self, store: str) -> None:
        super().__init__(store)
        self.store = store

    def __str__(self) -> str:
        return f"storage {self.store} is closed"


class StoreURIError(StorageError, ValueError):
    """A store URI that cannot be opened: unknown scheme or malformed location."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(uri, reason)
        self.uri = uri
        self.reason = reason

    def __str__(self) -> str:
        return f"bad store URI {self.uri!r}: {self.reason}"


class BackendNotInstalled(StorageError, ImportError):
    """A backend's optional dependency is missing; the message says what to install."""

    def __init__(self, scheme: str, module: str, hint: str) -> None:
        super().__init__(scheme, module, hint)
        self.scheme = scheme
        self.module = module
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.scheme}:// stores need the {self.module!r} module: {self.hint}"


class CodecError(StorageError, ValueError):
    """Bytes that are not a valid canonical msgpack encoding of the expected structure."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(what, reason)
        self.what = what
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot decode {self.what}: {self.reason}"


class SigningKeyError(StorageError, ValueError):
    """A signing key or public key that cannot be loaded or parsed."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(source, reason)
        self.source = source
        self.reason = reason

    def __str__(self) -> str:
        return f"bad key {self.source}: {self.reason}"


class IndexArgumentError(StorageError, ValueError):
    """An argument to the L4 index that is not what it must be (e.g. a hash of wrong size)."""

    def __init__(self, name: str, value: object, expected: str) -> None:
        super().__init__(name, value, expected)
        self.name = name
        self.value = value
        self.expected = expected

    def __str__(self) -> str:
        return f"{self.name}={self.value!r} is invalid: expected {self.expected}"


ALL_ERRORS: tuple[type[StorageError], ...] = (
    StorageError,
    InvalidBlobId,
    InvalidRecordGroup,
    BlobNotFound,
    BlobCorrupted,
    StorageUnavailable,
    StoreDown,
    StoreClosed,
    StoreURIError,
    BackendNotInstalled,
    CodecError,
    SigningKeyError,
    IndexArgumentError,
)
