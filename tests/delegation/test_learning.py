"""The learner: suggestions from recorded outcomes, and their persistence."""

from __future__ import annotations

import pytest

from delegation.errors import PlanCacheError
from delegation.learning import Learner, TargetRecord
from delegation.targets import LocalModel, RemoteModel

FAST, SLOW = LocalModel("fast"), RemoteModel("slow")


def test_no_suggestion_before_enough_observations():
    learner = Learner(min_calls=3)
    learner.record("f", FAST, True, 0.01)
    learner.record("f", FAST, True, 0.01)
    assert learner.best("f", [FAST]) is None
    learner.record("f", FAST, True, 0.01)
    target, why = learner.best("f", [FAST])
    assert target == FAST and "100% success over 3 calls" in why


def test_success_rate_then_latency_then_cost_decide():
    learner = Learner(min_calls=2)
    for ok in (True, False, True, True):
        learner.record("f", FAST, ok, 0.001)
    for _ in range(4):
        learner.record("f", SLOW, True, 0.5, cost=0.01)
    assert learner.best("f")[0] == SLOW  # 100% beats 75% however fast
    learner.record("g", FAST, True, 0.2)
    learner.record("g", FAST, True, 0.2)
    learner.record("g", SLOW, True, 0.1)
    learner.record("g", SLOW, True, 0.1)
    assert learner.best("g")[0] == SLOW  # equal success: lower latency


def test_targets_that_never_succeeded_are_not_suggested():
    learner = Learner(min_calls=1)
    learner.record("f", SLOW, False, 0.1)
    assert learner.best("f", [SLOW]) is None


def test_record_round_trips_through_a_file(tmp_path):
    learner = Learner(min_calls=1)
    learner.record("f", FAST, True, 0.25, cost=0.5)
    learner.record("f", SLOW, False, 1.0)
    assert learner.save(tmp_path / "outcomes.msgpack") == 2
    restored = Learner(min_calls=1)
    assert restored.load(tmp_path / "outcomes.msgpack") == 2
    assert restored.records("f") == learner.records("f")
    assert Learner().load(tmp_path / "missing.msgpack") == 0


def test_a_corrupt_record_is_one_clear_error(tmp_path):
    bad = tmp_path / "outcomes.msgpack"
    bad.write_bytes(b"\x93\x01\xadrtfs-outcomes\x91\x90")
    with pytest.raises(PlanCacheError, match="corrupt outcome record"):
        Learner().load(bad)


def test_merge_adds_counts_and_weights_latency_by_calls() -> None:
    learner = Learner(min_calls=1)
    for _ in range(3):
        learner.record("f", LocalModel("a"), True, 0.010, 0.5)
    learner.merge("f", LocalModel("a"), TargetRecord(calls=1, successes=0,
                                                      latency_ewma_s=0.050, cost_total=2.0))
    record = learner.records("f")[LocalModel("a")]
    assert (record.calls, record.successes) == (4, 3)
    assert record.cost_total == 3.5
    assert abs(record.latency_ewma_s - (0.010 * 3 + 0.050) / 4) < 1e-12


def test_merge_into_an_empty_learner_and_rejects_impossible_deltas() -> None:
    learner = Learner(min_calls=2)
    learner.merge("g", RemoteModel("r"), TargetRecord(2, 2, 0.2, 0.0))
    assert learner.best("g", [RemoteModel("r")]) is not None
    with pytest.raises(ValueError):
        learner.merge("g", RemoteModel("r"), TargetRecord(1, 2, 0.1, 0.0))
