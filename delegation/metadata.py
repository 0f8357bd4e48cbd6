"""Delegation metadata: what the arbiter or intent layer says about a call.

`DelegationMetadata` holds the seed's fields (confidence, reasoning, context, source) and the
CCOS keys (`intent_type`, `complexity`, `generation_method`, `delegated_agent`,
`agent_trust_score`, `agent_cost`), plus `sensitive`. It is validated when built, and its
`digest()` (xxh3_64 over canonical msgpack of the decision-relevant fields) goes into the
runtime context hash, so a cached plan never overrides metadata that would decide otherwise.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import msgpack
import xxhash

from delegation.errors import MetadataError

DIGEST_FORMAT = 1
"""Version of the digest's canonical encoding; bump it when the digested fields change."""


class Complexity(StrEnum):
    """How hard the arbiter judges a call to be."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, eq=True)
class DelegationMetadata:
    """Validated metadata of one call; every field is optional.

    Attributes:
        confidence: the arbiter's confidence in its suggestion, in [0, 1].
        reasoning: free text, for explanations only.
        context: free-form str-keyed details (read-only), for explanations only.
        source: who produced the metadata (e.g. "arbiter", "intent", "hint").
        intent_type: the intent's type (e.g. "analysis", "generation").
        complexity: low / medium / high.
        generation_method: how the plan was generated (e.g. "llm", "template").
        delegated_agent: the agent the arbiter suggests.
        agent_trust_score: trust in that agent, in [0, 1].
        agent_cost: that agent's cost per call, >= 0.
        sensitive: the call handles private data and must never go remote.
    """

    confidence: float | None = None
    reasoning: str | None = None
    context: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    source: str | None = None
    intent_type: str | None = None
    complexity: Complexity | None = None
    generation_method: str | None = None
    delegated_agent: str | None = None
    agent_trust_score: float | None = None
    agent_cost: float | None = None
    sensitive: bool = False

    def __post_init__(self) -> None:
        for name in _STRING_FIELDS:
            _check_str(name, getattr(self, name))
        _set(self, "confidence", _unit_interval("confidence", self.confidence))
        _set(self, "agent_trust_score", _unit_interval("agent_trust_score", self.agent_trust_score))
        _set(self, "agent_cost", _non_negative("agent_cost", self.agent_cost))
        _set(self, "complexity", _complexity(self.complexity))
        if not isinstance(self.sensitive, bool):
            raise MetadataError("sensitive", self.sensitive, "must be true or false")
        _set(self, "context", _context(self.context))
        _set(self, "_digest", _compute_digest(self))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> DelegationMetadata:
        """Build from a plain mapping with str keys; `intent-type` and `intent_type` both work.

        Raises:
            MetadataError: an unknown key (with a suggestion) or an invalid value.
        """
        if not isinstance(data, Mapping):
            raise MetadataError("<metadata>", data, "must be a mapping with string keys")
        kwargs: dict[str, Any] = {}
        for raw_key, value in data.items():
            if not isinstance(raw_key, str):
                raise MetadataError(str(raw_key), value, "keys must be strings")
            key = raw_key.replace("-", "_")
            if key not in _FIELD_NAMES:
                raise MetadataError(raw_key, value, _unknown_key_reason(key))
            if key in kwargs:
                raise MetadataError(raw_key, value, "given twice (with '-' and '_')")
            kwargs[key] = value
        return cls(**kwargs)

    def digest(self) -> int:
        """Return xxh3_64 of the canonical msgpack of the fields that can change a decision.

        `reasoning`, `context` and `source` are explanations and are not digested.
        """
        return self._digest  # type: ignore[attr-defined,no-any-return]

    def decision_fields(self) -> list[Any]:
        """Return the canonical list the digest is computed over (format version first)."""
        complexity = self.complexity.value if self.complexity is not None else None
        return [
            DIGEST_FORMAT,
            self.confidence,
            self.intent_type,
            complexity,
            self.generation_method,
            self.delegated_agent,
            self.agent_trust_score,
            self.agent_cost,
            self.sensitive,
        ]

    def to_dict(self) -> dict[str, Any]:
        """Return the non-default fields as a plain dict (for JSON and explanations)."""
        out: dict[str, Any] = {}
        for name in _FIELD_NAMES:
            value = getattr(self, name)
            if value is None or value is False or (name == "context" and not value):
                continue
            out[name] = dict(value) if name == "context" else value
        return out

    def __hash__(self) -> int:
        return self._digest  # type: ignore[attr-defined,no-any-return]


_FIELD_NAMES = tuple(f.name for f in fields(DelegationMetadata))
_STRING_FIELDS = (
    "reasoning",
    "source",
    "intent_type",
    "generation_method",
    "delegated_agent",
)


def _set(obj: DelegationMetadata, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


def _compute_digest(meta: DelegationMetadata) -> int:
    packed = msgpack.packb(meta.decision_fields(), use_bin_type=True)
    return xxhash.xxh3_64_intdigest(packed)


def _check_str(name: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise MetadataError(name, value, "must be a string")


def _number(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MetadataError(name, value, "must be a number")
    number = float(value)
    if not math.isfinite(number):
        raise MetadataError(name, value, "must be a finite number")
    return number


def _unit_interval(name: str, value: object) -> float | None:
    number = _number(name, value)
    if number is not None and not 0.0 <= number <= 1.0:
        raise MetadataError(name, value, "must be between 0 and 1")
    return number


def _non_negative(name: str, value: object) -> float | None:
    number = _number(name, value)
    if number is not None and number < 0.0:
        raise MetadataError(name, value, "must be >= 0")
    return number


def _complexity(value: object) -> Complexity | None:
    if value is None or isinstance(value, Complexity):
        return value
    if isinstance(value, str) and value in Complexity._value2member_map_:
        return Complexity(value)
    known = ", ".join(c.value for c in Complexity)
    raise MetadataError("complexity", value, f"must be one of {known}")


def _context(value: object) -> Mapping[str, Any]:
    if value is _EMPTY:
        return value
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise MetadataError("context", value, "must be a mapping with string keys")
    return MappingProxyType(dict(value))


def _unknown_key_reason(key: str) -> str:
    close = difflib.get_close_matches(key, _FIELD_NAMES, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown metadata key (known: {', '.join(_FIELD_NAMES)}){hint}"


EMPTY_METADATA = DelegationMetadata()
