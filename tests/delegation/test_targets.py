"""Execution targets: tagged round trips, hashing, rejection of bad input, config names."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from delegation.errors import TargetError
from delegation.targets import (
    LOCAL_PURE,
    L4CacheHit,
    LocalModel,
    LocalPure,
    RemoteModel,
    from_tagged,
    resolve_target_name,
)

ids = st.text(min_size=1, max_size=30)
targets = st.one_of(
    st.just(LOCAL_PURE),
    st.builds(LocalModel, ids),
    st.builds(RemoteModel, ids),
    st.builds(L4CacheHit, ids, st.text(alphabet="0123456789abcdef", min_size=1, max_size=128)),
)


@given(targets)
def test_tagged_form_round_trips_through_msgpack(target) -> None:
    packed = msgpack.packb(target.to_tagged(), use_bin_type=True)
    back = from_tagged(msgpack.unpackb(packed, raw=False))
    assert back == target
    assert hash(back) == hash(target)
    assert type(back) is type(target)


def test_tagged_forms_are_explicit_lists() -> None:
    assert LocalPure().to_tagged() == ["local-pure"]
    assert LocalModel("sentiment-rules").to_tagged() == ["local-model", "sentiment-rules"]
    assert RemoteModel("openai").to_tagged() == ["remote-model", "openai"]
    assert L4CacheHit("file:///s/blobs/ab", "00ff").to_tagged() == [
        "l4-cache-hit",
        "file:///s/blobs/ab",
        "00ff",
    ]


def test_targets_are_frozen_and_hashable_values() -> None:
    assert LocalModel("a") == LocalModel("a") != RemoteModel("a")
    assert len({LocalModel("a"), LocalModel("a"), RemoteModel("a"), LOCAL_PURE, LocalPure()}) == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        LocalModel("a").id = "b"  # type: ignore[misc]


def test_describe_is_the_table_form() -> None:
    assert str(LOCAL_PURE) == "LocalPure"
    assert str(LocalModel("sentiment-rules")) == "LocalModel(sentiment-rules)"
    assert RemoteModel("openai").describe() == "RemoteModel(openai)"
    hit = L4CacheHit("file:///x/blobs/1", "0123456789abcdef")
    assert str(hit) == "L4CacheHit(file:///x/blobs/1, sig 01234567…)"


@pytest.mark.parametrize(
    "bad, reason",
    [
        ("local-pure", "expected a non-empty list"),
        ([], "expected a non-empty list"),
        (["local-sentiment-rules"], "unknown tag 'local-sentiment-rules'"),
        ([7], "unknown tag 7"),
        (["local-model"], "takes 1 field"),
        (["local-pure", "x"], "takes 0 field"),
        (["remote-model", "a", "b"], "takes 1 field"),
        (["l4-cache-hit", "file:///p"], "takes 2 field"),
        (["local-model", ""], "non-empty string"),
        (["remote-model", 5], "non-empty string"),
        (["l4-cache-hit", "file:///p", b"\x00"], "non-empty string"),
        ({"local-model": "x"}, "expected a non-empty list"),
    ],
)
def test_from_tagged_rejects_bad_input_clearly(bad: object, reason: str) -> None:
    with pytest.raises(TargetError, match=reason) as info:
        from_tagged(bad)
    assert isinstance(info.value, ValueError)
    assert repr(bad) in str(info.value)


def test_constructors_reject_empty_ids() -> None:
    with pytest.raises(TargetError):
        LocalModel("")
    with pytest.raises(TargetError, match="signature"):
        L4CacheHit("file:///p", "")
    with pytest.raises(TargetError):
        RemoteModel(None)  # type: ignore[arg-type]


REMOTES = ("openai", "deepl-translate")
LOCALS = ("sentiment-rules", "summarizer", "codegen", "remote-mirror")


@pytest.mark.parametrize(
    "name, target",
    [
        ("local-pure", LOCAL_PURE),
        ("remote-openai", RemoteModel("openai")),
        ("remote-deepl-translate", RemoteModel("deepl-translate")),
        ("local-sentiment-rules", LocalModel("sentiment-rules")),
        ("local-remote-mirror", LocalModel("remote-mirror")),
    ],
)
def test_config_names_resolve_against_declared_ids(name: str, target) -> None:
    assert resolve_target_name(name, REMOTES, LOCALS) == target


@pytest.mark.parametrize(
    "name, message",
    [
        ("remote-anthropic", "no remote provider 'anthropic' is declared"),
        (
            "local-sentiment",
            "no local model 'sentiment' is declared; did you mean 'local-sentiment-rules'?",
        ),
        (
            "sentiment-rules",
            "a target is 'local-pure', 'remote-<provider id>' or 'local-<model id>'",
        ),
        ("remote-", "no remote provider '' is declared"),
        ("remote-sentiment-rules", "no remote provider 'sentiment-rules'"),
    ],
)
def test_unknown_config_names_are_errors_with_hints(name: str, message: str) -> None:
    with pytest.raises(ValueError, match="unknown target") as info:
        resolve_target_name(name, REMOTES, LOCALS)
    assert message in str(info.value)


def test_local_pure_is_ambiguous_when_a_model_is_called_pure() -> None:
    with pytest.raises(ValueError, match="ambiguous"):
        resolve_target_name("local-pure", (), ("pure",))
