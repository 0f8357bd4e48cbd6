"""The L1 plan cache: TTL on a fake clock, LRU, stats, queries, invalidation, persistence,
and a threaded stress test."""

from __future__ import annotations

import random
import sys
import threading
from pathlib import Path

import msgpack
import pytest

from delegation.errors import PlanCacheError
from delegation.l1 import (
    FILE_FORMAT,
    FILE_KIND,
    CacheStats,
    DelegationPlan,
    L1PlanCache,
    LoadReport,
    new_plan,
    task_key,
)
from delegation.targets import LOCAL_PURE, L4CacheHit, LocalModel, RemoteModel
from delegation.testing import FakeClock, PlanStoreTests

Clock = FakeClock  # the one fake clock (delegation.testing), short name for signatures


@pytest.fixture
def timer() -> FakeClock:
    return FakeClock(100.0)


@pytest.fixture
def wall() -> FakeClock:
    return FakeClock(1_700_000_000.0)


def plan(
    target=LOCAL_PURE, reasoning: str = "r", created_at: float = 1_700_000_000.0, **metadata: object
) -> DelegationPlan:
    return new_plan(target, 0.9, reasoning, metadata, clock=lambda: created_at)


def make(timer: Clock, wall: Clock, ttl_s: float = 3600, max_entries: int = 100) -> L1PlanCache:
    return L1PlanCache(ttl_s, max_entries, timer=timer, wall_clock=wall)


def test_task_key_is_the_hex_of_the_xor() -> None:
    assert task_key(0x0F0F, 0x00FF) == "0000000000000ff0"
    assert task_key(2**64 - 1, 0) == "ffffffffffffffff"
    assert task_key(2**64 + 5, 0) == "0000000000000005"  # kept to 64 bits
    assert task_key(123, 456) == format(123 ^ 456, "016x")


def test_put_then_get_and_stats(timer: Clock, wall: Clock) -> None:
    cache = make(timer, wall)
    p = plan(LocalModel("sentiment-rules"))
    assert cache.get("sentiment", "t1") is None
    cache.put("sentiment", "t1", p)
    assert cache.get("sentiment", "t1") is p
    assert cache.get("sentiment", "t2") is None
    assert cache.stats() == CacheStats(
        hits=1, misses=2, puts=1, evictions=0, invalidations=0, expirations=0, size=1
    )
    assert cache.stats().hit_rate == pytest.approx(1 / 3)
    assert L1PlanCache().stats().hit_rate == 0.0


def test_entries_expire_after_ttl_on_the_injected_timer(timer: Clock, wall: Clock) -> None:
    cache = make(timer, wall, ttl_s=60)
    cache.put("f", "t", plan())
    timer.advance(59.999)
    assert cache.get("f", "t") is not None
    assert ("f", "t") in cache
    timer.advance(0.001)  # exactly ttl_s after the put: expired
    assert ("f", "t") not in cache
    assert cache.get("f", "t") is None
    stats = cache.stats()
    assert (stats.expirations, stats.size, stats.misses) == (1, 0, 1)


def test_put_again_replaces_and_restarts_the_ttl(timer: Clock, wall: Clock) -> None:
    cache = make(timer, wall, ttl_s=60)
    cache.put("f", "t", plan(reasoning="old"))
    timer.advance(50)
    cache.put("f", "t", plan(reasoning="new"))
    timer.advance(50)
    assert cache.get("f", "t").reasoning == "new"  # type: ignore[union-attr]
    assert len(cache) == 1


def test_zero_ttl_caches_nothing(timer: Clock, wall: Clock) -> None:
    cache = make(timer, wall, ttl_s=0)
    cache.put("f", "t", plan())
    assert cache.get("f", "t") is None


def test_least_recently_used_is_evicted(timer: Clock, wall: Clock) -> None:
    cache = make(timer, wall, max_entries=3)
    for name in "abc":
        cache.put(name, "t", plan(reasoning=name))
    assert cache.get("a", "t") is not None  # a is now the most recently used
    cache.put("d", "t", plan(reasoning="d"))
    assert cache.get("b", "t") is None
    assert {a for a in "acd" if cache.get(a, "t") is not None} == {"a", "c", "d"}
    assert cache.stats().evictions == 1
    cache.check_invariants()


def test_queries_by_agent_and_by_task_skip_expired(timer: Clock, wall: Clock) -> None:
    cache = make(timer, wall, ttl_s=100)
    cache.put("summarize", "t1", plan(RemoteModel("openai")))
    cache.put("summarize", "t2", plan(LocalModel("summarizer")))
    cache.put("sentiment", "t1", plan(LocalModel("sentiment-rules")))
    timer.advance(50)
    cache.put("summarize", "t3", plan())
    assert set(cache.plans_for_agent("summarize")) == {"t1", "t2", "t3"}
    assert cache.plans_for_task("t1")["sentiment"].target == LocalModel("sentiment-rules")
    assert cache.agents() == ["sentiment", "summarize"]
    timer.advance(60)  # t1, t2 entries expired; t3 alive
    assert list(cache.plans_for_agent("summarize")) == ["t3"]
    assert cache.plans_for_task("t1") == {}
    assert cache.plans_for_agent("nobody") == {}
    assert cache.stats().hits == 0  # queries are not lookups
    assert cache.purge_expired() == 3
    assert cache.stats().expirations == 3 and len(cache) == 1
    cache.check_invariants()


def test_invalidation_by_entry_agent_task_and_all(timer: Clock, wall: Clock) -> None:
    cache = make(timer, wall)
    for agent in ("a", "b"):
        for task in ("t1", "t2"):
            cache.put(agent, task, plan())
    assert cache.invalidate("a", "t1") is True
    assert cache.invalidate("a", "t1") is False
    assert cache.invalidate_task("t2") == 2
    assert cache.invalidate_agent("b") == 1
    assert cache.invalidate_agent("b") == 0
    cache.put("c", "t9", plan())
    assert cache.clear() == 1
    assert len(cache) == 0 and cache.agents() == []
    assert cache.stats().invalidations == 5
    cache.check_invariants()


def test_constructor_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        L1PlanCache(ttl_s=-1)
    with pytest.raises(ValueError, match="max_entries"):
        L1PlanCache(max_entries=0)


# --- persistence ----------------------------------------------------------------------------


def test_save_writes_canonical_msgpack(tmp_path: Path, timer: Clock, wall: Clock) -> None:
    cache = make(timer, wall)
    cache.put("sentiment", "t1", plan(LocalModel("sentiment-rules"), layer="static", z=1, a=2))
    cache.put("f", "t2", plan(L4CacheHit("file:///s/blobs/ab", "00ff"), created_at=5.5))
    assert cache.save(tmp_path / "plans") == 2
    raw = (tmp_path / "plans").read_bytes()
    doc = msgpack.unpackb(raw, raw=False)
    assert doc == [
        FILE_FORMAT,
        FILE_KIND,
        [
            [
                "sentiment",
                "t1",
                ["local-model", "sentiment-rules"],
                0.9,
                "r",
                1_700_000_000.0,
                [["a", 2], ["layer", "static"], ["z", 1]],
            ],
            ["f", "t2", ["l4-cache-hit", "file:///s/blobs/ab", "00ff"], 0.9, "r", 5.5, []],
        ],
    ]
    # The same content, put in another metadata order, encodes to the same bytes.
    other = make(timer, wall)
    other.put("sentiment", "t1", plan(LocalModel("sentiment-rules"), z=1, a=2, layer="static"))
    other.put("f", "t2", plan(L4CacheHit("file:///s/blobs/ab", "00ff"), created_at=5.5))
    other.save(tmp_path / "again")
    assert (tmp_path / "again").read_bytes() == raw
    assert [p.name for p in tmp_path.iterdir()] != [] and not list(tmp_path.glob(".tmp-*"))


def test_load_restores_remaining_wall_clock_ttl(tmp_path: Path, timer: Clock, wall: Clock) -> None:
    first = make(timer, wall, ttl_s=3600)
    first.put("f", "old", plan(created_at=wall.now - 3000))  # 600 s left
    first.put("f", "new", plan(created_at=wall.now))  # 3600 s left
    first.put("f", "gone", plan(created_at=wall.now - 3599))  # 1 s left
    first.save(tmp_path / "plans")

    wall.advance(400)  # the process was down for 400 s
    restarted = L1PlanCache(3600, 100, timer=FakeClock(5.0), wall_clock=wall)
    second_timer = restarted._timer  # type: ignore[attr-defined]
    assert restarted.load(tmp_path / "plans") == LoadReport(restored=2, expired=1)
    assert restarted.get("f", "gone") is None
    second_timer.advance(199.9)
    assert restarted.get("f", "old") is not None  # 600 - 400 = 200 s were left
    second_timer.advance(0.1)
    assert restarted.get("f", "old") is None
    assert restarted.get("f", "new").created_at == wall.now - 400  # type: ignore[union-attr]
    restarted.check_invariants()


def test_load_uses_the_current_ttl_and_clamps_future_timestamps(
    tmp_path: Path, timer: Clock, wall: Clock
) -> None:
    cache = make(timer, wall, ttl_s=3600)
    cache.put("f", "future", plan(created_at=wall.now + 10_000))  # clock moved back
    cache.put("f", "hour", plan(created_at=wall.now - 1000))
    cache.save(tmp_path / "plans")
    shorter = make(FakeClock(0.0), wall, ttl_s=600)  # the config's TTL was lowered since
    assert shorter.load(tmp_path / "plans") == LoadReport(restored=1, expired=1)
    assert shorter.get("f", "future") is not None and shorter.get("f", "hour") is None


def test_load_keeps_recency_order_and_capacity(tmp_path: Path, timer: Clock, wall: Clock) -> None:
    cache = make(timer, wall, max_entries=10)
    for i in range(5):
        cache.put("f", f"t{i}", plan())
    cache.get("f", "t0")  # t0 becomes most recent
    cache.save(tmp_path / "plans")
    small = make(timer, wall, max_entries=2)
    small.load(tmp_path / "plans")
    assert set(small.plans_for_agent("f")) == {"t4", "t0"}


def test_save_skips_expired_and_replaces_atomically(
    tmp_path: Path, timer: Clock, wall: Clock
) -> None:
    target = tmp_path / "state" / "plans"
    cache = make(timer, wall, ttl_s=10)
    cache.put("f", "a", plan())
    cache.save(target)
    timer.advance(20)
    cache.put("f", "b", plan())
    assert cache.save(target) == 1
    rows = msgpack.unpackb(target.read_bytes())[2]
    assert [r[1] for r in rows] == ["b"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["plans"]


def test_missing_file_restores_nothing(tmp_path: Path) -> None:
    assert L1PlanCache().load(tmp_path / "none") == LoadReport(0, 0)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"\xc1", "not msgpack"),
        (msgpack.packb({"a": 1}), "not a state file of kind 'rtfs-l1-plans'"),
        (msgpack.packb([1, "other", []]), "not a state file of kind 'rtfs-l1-plans'"),
        (msgpack.packb([99, FILE_KIND, []]), "format 99 is not 1"),
        (msgpack.packb([1, FILE_KIND, {}]), "rows must be a list"),
        (
            msgpack.packb([1, FILE_KIND, [["f", "t", ["bogus"], 1.0, "r", 0.0, []]]]),
            "row 0: invalid execution target",
        ),
        (msgpack.packb([1, FILE_KIND, [["f", "t", ["local-pure"], 1.0, "r", 0.0]]]), "row 0"),
        (
            msgpack.packb([1, FILE_KIND, [[1, "t", ["local-pure"], 1.0, "r", 0.0, []]]]),
            "row 0: agent and task must be strings",
        ),
    ],
)
def test_corrupt_files_raise_plan_cache_error(tmp_path: Path, data: bytes, reason: str) -> None:
    (tmp_path / "plans").write_bytes(data)
    with pytest.raises(PlanCacheError, match=reason) as info:
        L1PlanCache().load(tmp_path / "plans")
    assert str(tmp_path / "plans") in str(info.value)


def test_unencodable_metadata_fails_save_clearly(tmp_path: Path, timer: Clock, wall: Clock) -> None:
    cache = make(timer, wall)
    cache.put("f", "t", plan(bad=object()))
    with pytest.raises(PlanCacheError, match="cannot encode"):
        cache.save(tmp_path / "plans")
    assert not (tmp_path / "plans").exists()


# --- concurrency ------------------------------------------------------------------------------


def test_threaded_stress_keeps_every_invariant(tmp_path: Path) -> None:
    timer, wall = FakeClock(0.0), FakeClock(1_700_000_000.0)
    cache = L1PlanCache(ttl_s=5.0, max_entries=64, timer=timer, wall_clock=wall)
    agents = [f"fn{i}" for i in range(12)]
    tasks = [task_key(i, 0xABCDEF) for i in range(12)]
    gets, puts, wrong, crashed, finished = [0] * 8, [0] * 8, [], [], []

    def worker(n: int) -> None:
        try:
            run(n)
            finished.append(n)
        except Exception as e:  # noqa: BLE001 -- a race shows up as any exception in a worker
            crashed.append(repr(e))

    def run(n: int) -> None:
        rng = random.Random(n)
        for _ in range(3000):
            agent, task = rng.choice(agents), rng.choice(tasks)
            op = rng.random()
            if op < 0.45:
                gets[n] += 1
                found = cache.get(agent, task)
                if found is not None and found.reasoning != f"{agent}/{task}":
                    wrong.append((agent, task, found.reasoning))
            elif op < 0.80:
                puts[n] += 1
                cache.put(agent, task, plan(reasoning=f"{agent}/{task}"))
            elif op < 0.85:
                cache.invalidate(agent, task)
            elif op < 0.88:
                cache.invalidate_agent(agent)
            elif op < 0.91:
                cache.invalidate_task(task)
            elif op < 0.94:
                for t, p in cache.plans_for_agent(agent).items():
                    if p.reasoning != f"{agent}/{t}":
                        wrong.append((agent, t, p.reasoning))
            elif op < 0.96:
                timer.advance(0.5)
            elif op < 0.98:
                cache.purge_expired()
            elif op < 0.99:
                cache.save(tmp_path / f"plans-{n}")
            else:
                cache.stats()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so races have a chance to happen
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    finally:
        sys.setswitchinterval(interval)
    assert not any(t.is_alive() for t in threads), "deadlock: workers still running"
    assert crashed == [] and sorted(finished) == list(range(8))
    assert wrong == []
    stats = cache.stats()
    assert stats.hits + stats.misses == sum(gets)
    assert stats.puts == sum(puts)
    assert stats.size == len(cache) <= 64
    cache.check_invariants()
    for n in range(8):  # every concurrent save left a complete, loadable file
        if (tmp_path / f"plans-{n}").exists():
            L1PlanCache(ttl_s=1e9).load(tmp_path / f"plans-{n}")


class TestL1PlanCacheConformance(PlanStoreTests):
    """The local L1 cache runs the same `PlanStore` suite as the cluster's facade."""

    def make_store(self, ttl_s: float, timer: FakeClock) -> L1PlanCache:
        return L1PlanCache(ttl_s, 1000, timer=timer, wall_clock=lambda: 1_700_000_000.0)


def test_an_expired_entry_goes_before_a_live_one_is_evicted(timer: Clock, wall: Clock) -> None:
    cache = make(timer, wall, ttl_s=10, max_entries=2)
    cache.put("a", "t", plan())
    timer.advance(5)
    cache.put("b", "t", plan())
    assert cache.get("a", "t") is not None  # a is now the most recently used
    timer.advance(6)  # a expires (put at 100, ttl 10); b is live until 115
    cache.put("c", "t", plan())
    assert cache.get("b", "t") is not None, "the live plan b was evicted before expired a"
    assert cache.get("c", "t") is not None
    stats = cache.stats()
    assert (stats.expirations, stats.evictions) == (1, 0)
