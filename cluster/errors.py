"""The cluster error hierarchy.

Every error derives from `ClusterError` and from the built-in exception that matches its
meaning. Every constructor passes all of its arguments to `super().__init__`, so each error
survives pickling (it crosses Ray, whose remote exceptions arrive as `RayTaskError(X)`; the
actor module re-raises the cause `X`) and arrives catchable by its own type; the message is
built in `__str__` from those arguments.

Errors that also derive from `OSError` (`ConnectionError`, `TimeoutError`, `PermissionError`)
take exactly two arguments: `OSError` keeps a third one as a file name and drops it from
`args`, which would break pickling.
"""

from __future__ import annotations


class ClusterError(Exception):
    """Root of every error the `cluster` package raises."""


class ClusterUnavailable(ClusterError, ConnectionError):
    """The fleet at `address` cannot be reached (nothing listens, or it refused us)."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(address, reason)
        self.address = address
        self.reason = reason

    def __str__(self) -> str:
        return f"cluster {self.address} unavailable: {self.reason}"


class AuthenticationFailed(ClusterError, PermissionError):
    """The fleet refused this process's Ray token (token authentication is on)."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(address, reason)
        self.address = address
        self.reason = reason

    def __str__(self) -> str:
        return (f"cluster {self.address} refused authentication: {self.reason} (give this "
                "process the head's token: RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH)")


class ShardUnavailable(ClusterError, ConnectionError):
    """A cache shard did not answer: its actor died, is restarting, or cannot be placed."""

    def __init__(self, shard: str, reason: str) -> None:
        super().__init__(shard, reason)
        self.shard = shard
        self.reason = reason

    def __str__(self) -> str:
        return f"cache shard {self.shard} unavailable: {self.reason}"


class ShardTimeout(ShardUnavailable, TimeoutError):
    """A cache shard that did not answer within the call's timeout."""

    def __str__(self) -> str:
        return f"cache shard {self.shard} timed out: {self.reason}"


class WireError(ClusterError, ValueError):
    """Bytes that are not a message of the shard wire format this version speaks."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(what, reason)
        self.what = what
        self.reason = reason

    def __str__(self) -> str:
        return f"undecodable {self.what}: {self.reason}"


class ShardRequestError(ClusterError, RuntimeError):
    """A shard that answered a request with an error (it could not apply the operation)."""

    def __init__(self, shard: str, message: str) -> None:
        super().__init__(shard, message)
        self.shard = shard
        self.message = message

    def __str__(self) -> str:
        return f"cache shard {self.shard} refused the request: {self.message}"


class FleetNotFound(ClusterError, LookupError):
    """The Ray cluster answers but holds no fleet in `namespace` (no `delegation serve`)."""

    def __init__(self, address: str, namespace: str) -> None:
        super().__init__(address, namespace)
        self.address = address
        self.namespace = namespace

    def __str__(self) -> str:
        return (f"no fleet in namespace {self.namespace!r} at {self.address} "
                "(start one with `delegation serve`)")


class FleetExists(ClusterError, ValueError):
    """A fleet is already running in `namespace` (two `delegation serve` for one fleet)."""

    def __init__(self, namespace: str, reason: str) -> None:
        super().__init__(namespace, reason)
        self.namespace = namespace
        self.reason = reason

    def __str__(self) -> str:
        return f"a fleet already runs in namespace {self.namespace!r}: {self.reason}"


class ArbiterUnavailable(ClusterError, ConnectionError):
    """A peer arbiter did not answer: not running, died mid-call, restarting, unplaceable."""

    def __init__(self, arbiter: str, reason: str) -> None:
        super().__init__(arbiter, reason)
        self.arbiter = arbiter
        self.reason = reason

    def __str__(self) -> str:
        return f"arbiter {self.arbiter} unavailable: {self.reason}"


class ArbiterTimeout(ArbiterUnavailable, TimeoutError):
    """A peer arbiter that did not answer within the call's time."""

    def __str__(self) -> str:
        return f"arbiter {self.arbiter} timed out: {self.reason}"


class ArbiterExists(ClusterError, ValueError):
    """An arbiter of this name already runs in the fleet (two `serve --arbiter NAME`)."""

    def __init__(self, arbiter: str, namespace: str) -> None:
        super().__init__(arbiter, namespace)
        self.arbiter = arbiter
        self.namespace = namespace

    def __str__(self) -> str:
        return (f"an arbiter named {self.arbiter!r} already runs in namespace "
                f"{self.namespace!r}")


ALL_ERRORS: tuple[type[ClusterError], ...] = (
    ClusterError,
    ClusterUnavailable,
    AuthenticationFailed,
    ShardUnavailable,
    ShardTimeout,
    WireError,
    ShardRequestError,
    FleetNotFound,
    FleetExists,
    ArbiterUnavailable,
    ArbiterTimeout,
    ArbiterExists,
)
