"""What an L2 entry is keyed by.

A call's key is its namespace (tenant or fleet: entries never cross namespaces), its function,
its target (provider and model id), the policy version, and the exact values of every
structured argument. Only free-text arguments are compared by meaning. A string argument is
free text when it contains whitespace; a one-word string ("fr", "usd", an id) is structured
and must match exactly, as must numbers, keywords, maps and vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import xxhash

from rtfs.canonical import packb, value_to_plain

KEY_FORMAT = 1


@dataclass(frozen=True, slots=True)
class L2Call:
    """One model call, as L2 sees it.

    Attributes:
        namespace: tenant or fleet the entry belongs to.
        function: the called function (or capability) id.
        target: the provider and model that answer, e.g. "remote-model/openai/gpt-4o-mini".
        policy_version: the configuration's policy version.
        args: the call's arguments (RTFS values).
        sensitive: the call handles private data (never stored in a shared tier).
        free_text: positions of the free-text arguments, when the caller knows them (None:
            every string with whitespace in it).
    """

    namespace: str
    function: str
    target: str
    policy_version: str
    args: tuple[Any, ...]
    sensitive: bool = False
    free_text: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class BucketKey:
    """Everything but the free text: entries of one bucket may answer for each other."""

    namespace: str
    function: str
    digest: str


@dataclass(frozen=True, slots=True)
class SplitCall:
    """A call's bucket and its free-text arguments (in order)."""

    bucket: BucketKey
    texts: tuple[str, ...]


def is_free_text(value: Any) -> bool:
    """True for a string with whitespace in it (a one-word string is structured)."""
    return isinstance(value, str) and any(ch.isspace() for ch in value.strip())


def split_call(call: L2Call) -> SplitCall:
    """Separate the free-text arguments from the key.

    Raises:
        TypeError: an argument has no canonical encoding (e.g. a function value).
        IndexError: a `free_text` position beyond the arguments.
    """
    if call.free_text is None:
        layout = [i for i, a in enumerate(call.args) if is_free_text(a)]
    else:
        layout = sorted(i for i in set(call.free_text) if isinstance(call.args[i], str))
    texts = tuple(call.args[i] for i in layout)
    structured = [[i, value_to_plain(a)] for i, a in enumerate(call.args) if i not in layout]
    fields = [KEY_FORMAT, call.namespace, call.function, call.target, call.policy_version,
              structured, layout]
    digest = xxhash.xxh3_128_hexdigest(packb(fields))
    return SplitCall(BucketKey(call.namespace, call.function, digest), texts)


def texts_key(normalized: Sequence[str]) -> str:
    """The tier-0 key of a call's normalised free texts (unambiguous for any number)."""
    return xxhash.xxh3_128_hexdigest(packb(list(normalized)))
