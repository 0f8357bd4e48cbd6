"""Execution targets: where a call runs.

An `ExecTarget` is one of four frozen, hashable values. They are stored and sent as tagged
lists (`["local-model", "sentiment-rules"]`), never as CCOS's `"local-<id>"` strings, which
cannot tell a model called `pure` from `LocalPure`. Config strings are resolved into targets
once, at load, by `resolve_target_name`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, TypeAlias

from delegation.errors import TargetError


class TargetKind(StrEnum):
    """The tag of a target's tagged form."""

    LOCAL_PURE = "local-pure"
    LOCAL_MODEL = "local-model"
    REMOTE_MODEL = "remote-model"
    L4_CACHE_HIT = "l4-cache-hit"


@dataclass(frozen=True, slots=True)
class LocalPure:
    """Run the call in the RTFS VM itself."""

    kind: ClassVar[TargetKind] = TargetKind.LOCAL_PURE

    def to_tagged(self) -> list[Any]:
        """Return the msgpack-able tagged form `["local-pure"]`."""
        return [self.kind.value]

    def describe(self) -> str:
        """Return the form used in tables: `LocalPure`."""
        return "LocalPure"

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True, slots=True)
class LocalModel:
    """Run the call on a model of this machine, by its `local_models` id."""

    id: str
    kind: ClassVar[TargetKind] = TargetKind.LOCAL_MODEL

    def __post_init__(self) -> None:
        _check_id(self.id, self)

    def to_tagged(self) -> list[Any]:
        """Return the msgpack-able tagged form `["local-model", id]`."""
        return [self.kind.value, self.id]

    def describe(self) -> str:
        """Return the form used in tables: `LocalModel(sentiment-rules)`."""
        return f"LocalModel({self.id})"

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True, slots=True)
class RemoteModel:
    """Run the call on a remote provider, by its `remote_providers` id."""

    id: str
    kind: ClassVar[TargetKind] = TargetKind.REMOTE_MODEL

    def __post_init__(self) -> None:
        _check_id(self.id, self)

    def to_tagged(self) -> list[Any]:
        """Return the msgpack-able tagged form `["remote-model", id]`."""
        return [self.kind.value, self.id]

    def describe(self) -> str:
        """Return the form used in tables: `RemoteModel(openai)`."""
        return f"RemoteModel({self.id})"

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True, slots=True)
class L4CacheHit:
    """Run verified bytecode loaded from L4.

    `storage_pointer` is the blob's URI (`file://…`, `s3://…`, `ipfs://…`); `signature` is
    the publisher's signature as lowercase hex.
    """

    storage_pointer: str
    signature: str
    kind: ClassVar[TargetKind] = TargetKind.L4_CACHE_HIT

    def __post_init__(self) -> None:
        _check_id(self.storage_pointer, self)
        if not isinstance(self.signature, str) or not self.signature:
            raise TargetError(self, "signature must be a non-empty hex string")

    def to_tagged(self) -> list[Any]:
        """Return the msgpack-able tagged form `["l4-cache-hit", pointer, signature]`."""
        return [self.kind.value, self.storage_pointer, self.signature]

    def describe(self) -> str:
        """Return the form used in tables: `L4CacheHit(file:///…/blob, sig 1a2b3c4d…)`."""
        sig = self.signature[:8] + ("…" if len(self.signature) > 8 else "")
        return f"L4CacheHit({self.storage_pointer}, sig {sig})"

    def __str__(self) -> str:
        return self.describe()


ExecTarget: TypeAlias = LocalPure | LocalModel | RemoteModel | L4CacheHit

LOCAL_PURE = LocalPure()

PEER_PREFIX = "peer:"
"""A peer arbiter discovered from the fleet's directory is the target `RemoteModel("peer:<name>")`;
no configured provider id can contain a colon, so the two never collide."""


def peer_target(arbiter: str) -> RemoteModel:
    """The target of the discovered peer arbiter `arbiter`."""
    return RemoteModel(PEER_PREFIX + arbiter)


def peer_name(provider_id: str) -> str | None:
    """The arbiter a discovered peer's provider id names, or None for any other id."""
    return provider_id[len(PEER_PREFIX):] if provider_id.startswith(PEER_PREFIX) else None


def _check_id(value: object, target: object) -> None:
    if not isinstance(value, str) or not value:
        raise TargetError(target, "its id must be a non-empty string")


_ARITY = {
    TargetKind.LOCAL_PURE.value: 1,
    TargetKind.LOCAL_MODEL.value: 2,
    TargetKind.REMOTE_MODEL.value: 2,
    TargetKind.L4_CACHE_HIT.value: 3,
}


def from_tagged(value: object) -> ExecTarget:
    """Rebuild a target from its tagged form; anything else raises `TargetError`."""
    if not isinstance(value, (list, tuple)) or not value:
        raise TargetError(value, "expected a non-empty list whose first item is a tag")
    tag = value[0]
    if not isinstance(tag, str) or tag not in _ARITY:
        raise TargetError(value, f"unknown tag {tag!r}; known: {', '.join(_ARITY)}")
    if len(value) != _ARITY[tag]:
        raise TargetError(value, f"tag {tag!r} takes {_ARITY[tag] - 1} field(s)")
    for field in value[1:]:
        if not isinstance(field, str) or not field:
            raise TargetError(value, "every field must be a non-empty string")
    if tag == TargetKind.LOCAL_PURE:
        return LOCAL_PURE
    if tag == TargetKind.LOCAL_MODEL:
        return LocalModel(value[1])
    if tag == TargetKind.REMOTE_MODEL:
        return RemoteModel(value[1])
    return L4CacheHit(value[1], value[2])


def resolve_target_name(
    name: str, remote_ids: Iterable[str], local_ids: Iterable[str]
) -> ExecTarget:
    """Resolve a config target string against the declared providers and models.

    `"local-pure"` is `LocalPure`, `"remote-<id>"` a declared remote provider, and
    `"local-<id>"` a declared local model (ids may contain dashes). Raises `ValueError`
    with a hint for an unknown or ambiguous name; the config loader adds file and line.
    """
    remote, local = set(remote_ids), set(local_ids)
    if name == "local-pure":
        if "pure" in local:
            raise ValueError(
                "'local-pure' is ambiguous: it names LocalPure and the local model 'pure'"
            )
        return LOCAL_PURE
    if name.startswith("remote-") and name[7:] in remote:
        return RemoteModel(name[7:])
    if name.startswith("local-") and name[6:] in local:
        return LocalModel(name[6:])
    raise ValueError(_unknown_target_message(name, remote, local))


def target_names(remote_ids: Iterable[str], local_ids: Iterable[str]) -> list[str]:
    """Return every config target string the declared providers and models make valid."""
    names = ["local-pure"]
    names += [f"remote-{i}" for i in remote_ids]
    names += [f"local-{i}" for i in local_ids]
    return names


def _unknown_target_message(name: str, remote: set[str], local: set[str]) -> str:
    valid = target_names(sorted(remote), sorted(local))
    message = f"unknown target {name!r}"
    if name.startswith("remote-"):
        message += f": no remote provider {name[7:]!r} is declared"
    elif name.startswith("local-"):
        message += f": no local model {name[6:]!r} is declared"
    else:
        message += ": a target is 'local-pure', 'remote-<provider id>' or 'local-<model id>'"
    close = difflib.get_close_matches(name, valid, n=1)
    if close:
        message += f"; did you mean {close[0]!r}?"
    return message
