"""Delegation metadata: building from plain maps, validation that names the key, digest."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest
import xxhash

from delegation.errors import MetadataError
from delegation.metadata import EMPTY_METADATA, Complexity, DelegationMetadata

FULL = {
    "confidence": 0.8,
    "reasoning": "the arbiter thinks so",
    "context": {"user": "alice"},
    "source": "arbiter",
    "intent-type": "analysis",
    "complexity": "high",
    "generation-method": "llm",
    "delegated-agent": "summarizer-v2",
    "agent-trust-score": 0.9,
    "agent-cost": 0.002,
    "sensitive": True,
}


def test_builds_from_a_plain_map_with_dashed_or_underscored_keys() -> None:
    meta = DelegationMetadata.from_mapping(FULL)
    assert meta.intent_type == "analysis"
    assert meta.complexity is Complexity.HIGH
    assert meta.agent_trust_score == 0.9 and meta.agent_cost == 0.002
    assert meta.context["user"] == "alice"
    underscored = {k.replace("-", "_"): v for k, v in FULL.items()}
    assert DelegationMetadata.from_mapping(underscored) == meta


def test_empty_map_gives_empty_metadata() -> None:
    assert DelegationMetadata.from_mapping({}) == EMPTY_METADATA
    assert EMPTY_METADATA.to_dict() == {}


@pytest.mark.parametrize(
    "key, value, reason",
    [
        ("confidence", 1.5, "between 0 and 1"),
        ("confidence", -0.01, "between 0 and 1"),
        ("confidence", "high", "must be a number"),
        ("confidence", True, "must be a number"),
        ("confidence", float("nan"), "finite"),
        ("agent-trust-score", 2, "between 0 and 1"),
        ("agent-cost", -1, "must be >= 0"),
        ("agent-cost", float("inf"), "finite"),
        ("complexity", "extreme", "must be one of low, medium, high"),
        ("complexity", 3, "must be one of"),
        ("intent-type", 5, "must be a string"),
        ("delegated-agent", ["a"], "must be a string"),
        ("sensitive", "yes", "true or false"),
        ("context", ["a", "b"], "mapping with string keys"),
        ("context", {1: "a"}, "mapping with string keys"),
    ],
)
def test_invalid_values_name_the_key(key: str, value: object, reason: str) -> None:
    with pytest.raises(MetadataError, match=reason) as info:
        DelegationMetadata.from_mapping({key: value})
    assert info.value.key.replace("-", "_") == key.replace("-", "_")
    assert key.replace("-", "_") in str(info.value)
    assert isinstance(info.value, ValueError)


def test_unknown_key_is_rejected_with_a_suggestion() -> None:
    with pytest.raises(MetadataError, match="did you mean 'complexity'") as info:
        DelegationMetadata.from_mapping({"complexty": "high"})
    assert info.value.key == "complexty"


def test_same_key_twice_is_rejected() -> None:
    with pytest.raises(MetadataError, match="given twice"):
        DelegationMetadata.from_mapping({"intent-type": "a", "intent_type": "a"})


def test_non_mapping_is_rejected() -> None:
    with pytest.raises(MetadataError, match="mapping"):
        DelegationMetadata.from_mapping([("confidence", 1.0)])  # type: ignore[arg-type]


def test_metadata_is_frozen_and_context_read_only() -> None:
    meta = DelegationMetadata.from_mapping(FULL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.confidence = 0.1  # type: ignore[misc]
    with pytest.raises(TypeError):
        meta.context["user"] = "mallory"  # type: ignore[index]


def test_digest_is_xxh3_64_of_the_documented_canonical_list() -> None:
    meta = DelegationMetadata.from_mapping(FULL)
    expected_list = [1, 0.8, "analysis", "high", "llm", "summarizer-v2", 0.9, 0.002, True]
    packed = msgpack.packb(expected_list, use_bin_type=True)
    assert meta.digest() == xxhash.xxh3_64_intdigest(packed)
    assert hash(meta) == hash(meta.digest())


def test_digest_is_pinned_across_versions() -> None:
    # If this changes, plans cached by an older version would be read with a new meaning:
    # bump DIGEST_FORMAT instead of editing the number.
    assert EMPTY_METADATA.digest() == xxhash.xxh3_64_intdigest(
        msgpack.packb([1, None, None, None, None, None, None, None, False])
    )
    assert DelegationMetadata(confidence=1).digest() == DelegationMetadata(confidence=1.0).digest()


@pytest.mark.parametrize(
    "key, value",
    [
        ("confidence", 0.3),
        ("intent_type", "generation"),
        ("complexity", "low"),
        ("generation_method", "template"),
        ("delegated_agent", "other"),
        ("agent_trust_score", 0.1),
        ("agent_cost", 5.0),
        ("sensitive", False),
    ],
)
def test_every_decision_field_changes_the_digest(key: str, value: object) -> None:
    base = DelegationMetadata.from_mapping(FULL)
    changed = dataclasses.replace(base, **{key: value})
    assert changed.digest() != base.digest()
    assert changed != base


@pytest.mark.parametrize(
    "key, value",
    [
        ("reasoning", "other words"),
        ("context", {"user": "bob"}),
        ("source", "intent"),
    ],
)
def test_explanations_do_not_change_the_digest(key: str, value: object) -> None:
    base = DelegationMetadata.from_mapping(FULL)
    changed = dataclasses.replace(base, **{key: value})
    assert changed.digest() == base.digest()
    assert changed != base


def test_to_dict_lists_what_was_set() -> None:
    meta = DelegationMetadata.from_mapping({"complexity": "low", "context": {"a": 1}})
    assert meta.to_dict() == {"complexity": Complexity.LOW, "context": {"a": 1}}
