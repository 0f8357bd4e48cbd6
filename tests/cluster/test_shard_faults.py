"""Shard faults under decide load, on real actors: a SIGKILLed shard (Ray restarts it empty,
it rehydrates from its replicas) and a shard stopped for good (traffic goes around it, and
`cache stats` shows it down). Zero wrong answers, zero failed calls."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import ray

from cluster.actors import DIRECTORY_NAME, Fleet, ray_get, start_fleet
from cluster.errors import ClusterError
from cluster.planstore import ShardedPlanStore
from cluster.stats import fleet_report
from delegation.config import default_config
from delegation.l1 import new_plan
from delegation.runtime import Runtime
from delegation.targets import LocalModel
from tests.cluster.conftest import ensure_ray

SYMBOLS = [f"agent-{i}" for i in range(120)]
TARGETS = (LocalModel("sentiment-rules"), LocalModel("summarizer"))


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    ensure_ray()
    made = start_fleet(f"faults-{uuid.uuid4().hex[:8]}", 3, 2)
    yield made
    made.stop()


def expected(symbol: str) -> LocalModel:
    return TARGETS[int(symbol.rsplit("-", 1)[1]) % 2]


def seeded_store(fleet: Fleet, tmp_path, **options: object) -> ShardedPlanStore:
    """A store holding a plan per symbol for the task a runtime computes for `(symbol "x")`,
    flushed to the fleet."""
    config = default_config(tmp_path, state_dir=tmp_path / "state")
    store = ShardedPlanStore(fleet.client(timeout_s=5.0), **options)  # type: ignore[arg-type]
    runtime = Runtime(config, plans=store)
    for symbol in SYMBOLS:
        ctx = runtime.contexts.context(symbol, ("x",), None, None, has_source=False)
        store.put(symbol, ctx.task, new_plan(expected(symbol), 0.9, "seeded"))
    store.flush()
    return store


@dataclass
class Load:
    """Threads deciding every symbol over and over, each with its own runtime and a plan
    store whose near-cache goes stale almost at once (so decisions keep asking shards)."""

    fleet: Fleet
    tmp_path: Path
    decisions: int = 0
    wrong: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, threads: int = 3) -> list[threading.Thread]:
        started = [threading.Thread(target=self._worker, args=(n,)) for n in range(threads)]
        for thread in started:
            thread.start()
        return started

    def _worker(self, n: int) -> None:
        config = default_config(self.tmp_path, state_dir=self.tmp_path / f"s{n}")
        store = ShardedPlanStore(self.fleet.client(timeout_s=5.0), near_ttl_s=0.01)
        runtime = Runtime(config, plans=store)
        try:
            while not self.stop.is_set():
                for symbol in SYMBOLS[n::3]:
                    self._decide(runtime, symbol)
        finally:
            store.close()

    def _decide(self, runtime: Runtime, symbol: str) -> None:
        try:
            decision = runtime.decide(symbol, ("x",))
        except Exception as err:  # noqa: BLE001 - every failure is what this test counts
            with self.lock:
                self.errors.append(f"{symbol}: {type(err).__name__}: {err}")
            return
        with self.lock:
            self.decisions += 1
            if decision.target != expected(symbol) or str(decision.layer) != "l1-cache":
                self.wrong.append(f"{symbol}: {decision.target} by {decision.layer}")

    def settle(self, decisions: int, timeout_s: float = 60.0) -> None:
        """Let at least `decisions` more decisions happen."""
        target = self.decisions + decisions
        deadline = time.monotonic() + timeout_s
        while self.decisions < target and time.monotonic() < deadline:
            time.sleep(0.05)


def wait_restarted(handle: object, timeout_s: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            info = ray_get(handle.info.remote(), timeout_s=5.0, name="shard")  # type: ignore[attr-defined]
        except ClusterError:
            continue
        if info["restarted"]:
            return info
        time.sleep(0.1)
    raise AssertionError("the shard never came back")


def test_a_sigkilled_shard_costs_no_answer_and_comes_back_with_its_entries(
        fleet: Fleet, tmp_path) -> None:
    seeded_store(fleet, tmp_path).close()
    victim = "rtfs-shard-1"
    handle = fleet.shards[victim]
    pid = ray_get(handle.info.remote(), timeout_s=10.0, name=victim)["pid"]
    load = Load(fleet, tmp_path)
    threads = load.run()
    try:
        load.settle(300)
        os.kill(pid, signal.SIGKILL)
        info = wait_restarted(handle)
        load.settle(600)
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(60)
    assert load.errors == [] and load.wrong == []
    assert load.decisions >= 900
    assert info["pid"] != pid and info["rehydrated"] > 0 and info["unanswered"] == []
    # Ground truth from the restarted shard's own table: every agent it replicates is back.
    mine = [s for s in SYMBOLS if victim in fleet.client().placement.replicas(s)]
    client = fleet.client(timeout_s=10.0)
    held = client.call(victim, ["agents", "l1", mine])
    assert mine and all(len(rows) == 1 for rows in held)
    restarts = ray_get(fleet.directory.restarts.remote(), timeout_s=10.0, name=DIRECTORY_NAME)
    assert restarts[victim] == 1


def test_a_shard_stopped_for_good_is_gone_around_and_reported_down(
        fleet: Fleet, tmp_path) -> None:
    seeded_store(fleet, tmp_path).close()
    victim = "rtfs-shard-2"
    load = Load(fleet, tmp_path)
    threads = load.run()
    try:
        load.settle(300)
        ray.kill(fleet.shards[victim], no_restart=True)
        load.settle(600)
        writer = ShardedPlanStore(fleet.client(timeout_s=5.0))
        writer.put("after-the-loss", "t", new_plan(TARGETS[0], 1.0, "new"))
        writer.close()
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(60)
    assert load.errors == [] and load.wrong == []
    with closing(ShardedPlanStore(fleet.client(timeout_s=5.0))) as reader:
        assert reader.get("after-the-loss", "t") is not None
    restarts = ray_get(fleet.directory.restarts.remote(), timeout_s=10.0, name=DIRECTORY_NAME)
    reports = {r.name: r for r in fleet_report(fleet.client(timeout_s=5.0), restarts)}
    assert reports[victim].down
    assert not reports["rtfs-shard-0"].down and not reports["rtfs-shard-1"].down
    assert reports["rtfs-shard-0"].entries + reports["rtfs-shard-1"].entries > 0
