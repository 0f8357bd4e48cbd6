"""`cache stats` rows: counters per shard, restarts from the directory, down shards."""

from __future__ import annotations

import json

from cluster.directory import ClusterDirectory, parse_description
from cluster.stats import FIELDS, as_json, as_table, fleet_report
from delegation.l1 import new_plan, task_key
from delegation.targets import LocalModel
from delegation.testing import FakeClock
from tests.cluster.support import LocalFleet


def test_rows_count_per_shard_and_a_shard_that_does_not_answer_is_down() -> None:
    fleet = LocalFleet(FakeClock(1000.0))
    store = fleet.store()
    for i in range(30):
        store.put(f"agent-{i}", task_key(i, 0), new_plan(LocalModel("m"), 1.0, "r"))
    store.flush()
    fleet.store().prefetch([f"agent-{i}" for i in range(40)])
    fleet.transport.down = {"s1"}
    reports = fleet_report(fleet.client(), {"s0": 2})
    by_name = {r.name: r for r in reports}
    assert [r.name for r in reports] == ["s0", "s1", "s2"]
    assert by_name["s1"].down and by_name["s1"].entries == 0
    for name in ("s0", "s2"):
        truth = fleet.shards[name].stats()  # read from the shard itself
        assert not by_name[name].down
        assert (by_name[name].entries, by_name[name].hits, by_name[name].misses) == (
            truth.entries, truth.hits, truth.misses)
    assert by_name["s0"].restarts == 2 and by_name["s2"].restarts == 0
    assert sum(r.entries for r in reports) > 0
    document = json.loads(json.dumps(as_json(reports)))
    assert list(document) == ["shards"]
    assert all(list(row) == list(FIELDS) for row in document["shards"])
    assert "down" in as_table(reports).splitlines()[2]


def test_the_directory_counts_restarts_and_sums_reports() -> None:
    fleet = LocalFleet(FakeClock(0.0))
    directory = ClusterDirectory(fleet.topology, clock=lambda: 42.0)
    assert parse_description(directory.describe()) == (fleet.topology, 42.0)
    assert directory.note_restart("s1") == 1 and directory.note_restart("s1") == 2
    assert directory.restarts() == {"s0": 0, "s1": 2, "s2": 0}
    directory.report("run-a", {"decisions": 3})
    directory.report("run-a", {"decisions": 5})  # cumulative: replaces, never adds
    directory.report("run-b", {"decisions": 1, "errors": 1})
    assert directory.totals() == {"decisions": 6.0, "errors": 1.0}
