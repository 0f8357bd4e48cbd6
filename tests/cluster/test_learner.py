"""Outcomes shared by the fleet: each runtime's totals travel with the plan store's batches,
every node's learner counts every outcome once."""

from __future__ import annotations

import pytest

from cluster.learner import SharedLearner, decode_outcome, encode_outcome
from cluster.wire import Entry, Stamp
from delegation.learning import TargetRecord
from delegation.targets import LocalModel, RemoteModel
from delegation.testing import FakeClock
from tests.cluster.support import LocalFleet

FAST, SLOW = LocalModel("fast"), RemoteModel("slow")


@pytest.fixture
def fleet() -> LocalFleet:
    return LocalFleet(FakeClock(1000.0))


def node(fleet: LocalFleet, writer: str):
    learner = SharedLearner(writer, clock=fleet.wall, min_calls=2)
    return learner, fleet.store(learner=learner, writer=writer)


def test_what_one_node_learned_another_uses(fleet: LocalFleet) -> None:
    a, a_store = node(fleet, "a")
    for _ in range(3):
        a.record("summarize", FAST, True, 0.010)
        a.record("summarize", SLOW, False, 0.500)
    a_store.flush()
    b, b_store = node(fleet, "b")
    assert b.best("summarize") is None
    b_store.prefetch(["summarize"])  # the outcomes ride in the same request as the plans
    assert b.records("summarize")[FAST].calls == 3
    best = b.best("summarize", [SLOW, FAST])
    assert best is not None and best[0] == FAST


def test_every_outcome_is_counted_once_across_refreshes_and_retries(fleet: LocalFleet) -> None:
    a, a_store = node(fleet, "a")
    b, b_store = node(fleet, "b")
    a.record("f", FAST, True, 0.1)
    a_store.flush()
    b_store.prefetch(["f"])
    b.record("f", FAST, False, 0.3)
    a.record("f", FAST, True, 0.1)
    a_store.flush()
    b_store.flush()
    b_store.prefetch(["f"])  # a's totals grew by one call: only that is merged
    a_store.prefetch(["f"])
    for learner in (a, b):
        record = learner.records("f")[FAST]
        assert (record.calls, record.successes) == (3, 2)
        assert record.latency_ewma_s == pytest.approx((0.1 + 0.1 + 0.3) / 3, rel=0.2)
    # The same totals written again (a retry, a replica) change nothing.
    for shard in fleet.shards.values():
        shard.put_many("outcomes", [Entry("f", f"a/{FAST}", Stamp(1, "a", fleet.wall() + 60),
                                          encode_outcome(FAST, TargetRecord(1, 1, 0.1)))])
    b_store.prefetch(["f"])
    assert b.records("f")[FAST].calls == 3


def test_a_node_does_not_merge_its_own_totals_back(fleet: LocalFleet) -> None:
    a, a_store = node(fleet, "a")
    a.record("f", FAST, True, 0.1)
    a_store.flush()
    a_store.prefetch(["f"])
    assert a.records("f")[FAST].calls == 1
    assert a.own("f")[FAST].calls == 1


def test_an_unreadable_outcome_is_skipped_and_counted(fleet: LocalFleet) -> None:
    b, _ = node(fleet, "b")
    bad = Entry("f", "x", Stamp(1, "z", fleet.wall() + 60), b"\x93\x01\x02")
    good = Entry("f", str(FAST), Stamp(1, "y", fleet.wall() + 60),
                 encode_outcome(FAST, TargetRecord(2, 1, 0.2, 0.5)))
    assert b.apply_fleet([bad, good]) == 1
    assert b.bad_values == 1 and b.records("f")[FAST].cost_total == 0.5


def test_outcome_values_round_trip_and_reject_impossible_counts() -> None:
    record = TargetRecord(4, 3, 0.25, 1.5)
    assert decode_outcome(encode_outcome(SLOW, record)) == (SLOW, record)
    with pytest.raises(ValueError):
        decode_outcome(encode_outcome(SLOW, TargetRecord(1, 2, 0.1, 0.0)))
