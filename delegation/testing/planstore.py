"""The `PlanStore` conformance suite: written once, run against every plan store by
subclassing (the local `L1PlanCache`, the cluster's sharded facade over in-process shards and
over Ray actors).

A subclass implements `make_store(ttl_s, timer)`, returning a fresh, empty store whose entries
live `ttl_s` on `timer` (a `FakeClock` the tests advance), and may override `reopen(store)`
to return a second client of the same backing store (for `flush` visibility); stores that are
purely in-process return the store itself. The suite checks what the engine relies on: a hit
returns the same plan object, puts are visible, TTL, invalidation, persistence, threads.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from delegation.errors import PlanCacheError
from delegation.l1 import CacheStats, DelegationPlan, new_plan, task_key
from delegation.planstore import PlanStore
from delegation.targets import LOCAL_PURE, LocalModel, RemoteModel
from delegation.testing.clock import FakeClock

WALL = 1_700_000_000.0


def _plan(target: object = LOCAL_PURE, reasoning: str = "r") -> DelegationPlan:
    return new_plan(target, 0.9, reasoning, {"layer": "metadata"},  # type: ignore[arg-type]
                    clock=lambda: WALL)


class PlanStoreTests:
    """Conformance suite for `PlanStore`; subclass it once per implementation."""

    ttl_s = 60.0

    def make_store(self, ttl_s: float, timer: FakeClock) -> PlanStore:
        """A fresh, empty store whose entries live `ttl_s` seconds on `timer`."""
        raise NotImplementedError

    def reopen(self, store: PlanStore) -> PlanStore:
        """Another client of `store`'s backing store (default: the same object)."""
        return store

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock(1000.0)

    @pytest.fixture
    def store(self, clock: FakeClock):  # type: ignore[no-untyped-def]
        made = self.make_store(self.ttl_s, clock)
        yield made
        made.close()

    def test_satisfies_protocol(self, store: PlanStore) -> None:
        assert isinstance(store, PlanStore)

    def test_miss_then_hit_returns_the_same_object(self, store: PlanStore) -> None:
        task = task_key(1, 2)
        assert store.get("f", task) is None
        plan = _plan(LocalModel("m"))
        store.put("f", task, plan)
        first = store.get("f", task)
        assert first == plan
        assert store.get("f", task) is first  # identity: the engine keys decisions on it

    def test_keys_do_not_collide(self, store: PlanStore) -> None:
        a, b = _plan(LocalModel("a")), _plan(RemoteModel("b"))
        store.put("f", task_key(1, 0), a)
        store.put("g", task_key(1, 0), b)
        assert store.get("f", task_key(1, 0)) == a
        assert store.get("g", task_key(1, 0)) == b
        assert store.get("f", task_key(2, 0)) is None

    def test_put_replaces(self, store: PlanStore) -> None:
        task = task_key(3, 4)
        store.put("f", task, _plan(LocalModel("old")))
        assert store.get("f", task) is not None
        store.put("f", task, _plan(LocalModel("new")))
        found = store.get("f", task)
        assert found is not None and found.target == LocalModel("new")

    def test_entries_expire_after_ttl(self, store: PlanStore, clock: FakeClock) -> None:
        task = task_key(5, 6)
        store.put("f", task, _plan())
        clock.advance(self.ttl_s * 0.5)
        assert store.get("f", task) is not None
        clock.advance(self.ttl_s)
        assert store.get("f", task) is None

    def test_invalidate(self, store: PlanStore) -> None:
        task = task_key(7, 8)
        store.put("f", task, _plan())
        assert store.invalidate("f", task) is True
        assert store.get("f", task) is None
        assert store.invalidate("f", task) is False

    def test_invalidate_agent(self, store: PlanStore) -> None:
        for i in range(3):
            store.put("f", task_key(i, 0), _plan())
        store.put("g", task_key(0, 0), _plan())
        assert store.invalidate_agent("f") == 3
        assert all(store.get("f", task_key(i, 0)) is None for i in range(3))
        assert store.get("g", task_key(0, 0)) is not None

    def test_flush_makes_puts_visible_to_another_client(self, store: PlanStore) -> None:
        task = task_key(9, 9)
        store.put("f", task, _plan(LocalModel("shared")))
        store.flush()
        other = self.reopen(store)
        found = other.get("f", task)
        assert found is not None and found.target == LocalModel("shared")

    def test_prefetch_then_get(self, store: PlanStore) -> None:
        task = task_key(11, 12)
        store.put("f", task, _plan(LocalModel("p")))
        store.flush()
        other = self.reopen(store)
        other.prefetch(["f", "never-stored"])
        found = other.get("f", task)
        assert found is not None and found.target == LocalModel("p")
        assert other.get("never-stored", task) is None

    def test_stats_count_hits_misses_and_puts(self, store: PlanStore) -> None:
        before = store.stats()
        assert isinstance(before, CacheStats)
        task = task_key(13, 14)
        store.get("f", task)
        store.put("f", task, _plan())
        store.get("f", task)
        after = store.stats()
        assert after.misses >= before.misses + 1
        assert after.hits >= before.hits + 1
        assert after.puts >= before.puts + 1

    def test_save_and_load_round_trip(self, store: PlanStore, clock: FakeClock,
                                      tmp_path: Path) -> None:
        tasks = [task_key(i, 100) for i in range(5)]
        for i, task in enumerate(tasks):
            store.put(f"f{i}", task, _plan(LocalModel(f"m{i}"), reasoning=f"why {i}"))
        assert store.save(tmp_path / "plans") == 5
        fresh = self.make_store(self.ttl_s, FakeClock(clock.now))
        try:
            report = fresh.load(tmp_path / "plans")
            assert report.restored == 5
            for i, task in enumerate(tasks):
                found = fresh.get(f"f{i}", task)
                assert found is not None and found.reasoning == f"why {i}"
        finally:
            fresh.close()

    def test_load_of_a_missing_file_restores_nothing(self, store: PlanStore,
                                                      tmp_path: Path) -> None:
        assert store.load(tmp_path / "absent").restored == 0

    def test_load_of_a_corrupt_file_names_it(self, store: PlanStore, tmp_path: Path) -> None:
        path = tmp_path / "plans"
        path.write_bytes(b"\x93not msgpack plans")
        with pytest.raises(PlanCacheError, match="plans"):
            store.load(path)

    def test_concurrent_puts_and_gets(self, store: PlanStore) -> None:
        errors: list[BaseException] = []

        def worker(n: int) -> None:
            try:
                for i in range(200):
                    task = task_key(n, i)
                    plan = _plan(LocalModel(f"w{n}-{i}"))
                    store.put(f"w{n}", task, plan)
                    found = store.get(f"w{n}", task)
                    assert found is not None and found.target == LocalModel(f"w{n}-{i}")
            except BaseException as err:  # reported below
                errors.append(err)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors[0]

    def test_close_is_idempotent(self, clock: FakeClock) -> None:
        store = self.make_store(self.ttl_s, clock)
        store.put("f", task_key(1, 1), _plan())
        store.close()
        store.close()
