"""L2 on the fleet: a semantic lookup on the cache shards against the same lookup in process
and against Ray's bare 1:1 actor call, in the same run.

    python bench/bench_fleet_l2.py [--rounds N] [--entries N ...]

Starts a private single-node Ray (as `bench_cluster.py` does: 127.0.0.1, 2 CPUs, token auth)
and three shard actors (replication 2), writes `--entries` entries (384-dimensional unit
vectors, the MiniLM size) into one L2 bucket of a `ShardedL2Store` and of a `LocalL2Store`,
then times, in alternation (fleet, local, bare call, fleet, ...), one call of each:

- the fleet: `ShardedL2Store.find` of a text it never saw with a query vector near a stored
  one (so the near-cache cannot answer: one request to the bucket's shard, which searches its
  index and returns 4 candidates with their vectors);
- the local store: `LocalL2Store.find` of the same;
- the yardstick: a trivial actor's 1:1 call carrying a request of the same size.

Embedding is excluded (vectors are made before timing). Goals: one request per lookup, and
the fleet's p50 within 1.3x of (bare call + local lookup): a round trip plus the search,
nothing more. A repeated exact lookup is answered by the near-cache (no round trip); its row
compares it with the local store's exact hit. Last, an L3 decision weighing the tables of
50 other nodes (merged when they arrive) against a local one: no round trip either way.
Not a test: compare numbers within one run.
"""

from __future__ import annotations

import argparse
import shutil
import time
import uuid

import bench_cluster as base  # Ray's environment first (it reads it at import)
import numpy as np
from bench_cluster import Echo, Table, alternate, pct, ray, timed, verdict

from cluster.actors import Fleet, start_fleet
from cluster.l2store import ShardedL2Store
from cluster.l3shared import SharedContextualCache, encode_table
from cluster.wire import Entry, Stamp
from delegation.l2.keys import BucketKey
from delegation.l2.store import L2Entry, LocalL2Store
from delegation.l3 import ContextualCache, make_context
from delegation.l3.cache import Arm
from delegation.targets import LocalModel

DIMENSION = 384
MODEL = "bench-model"
K = 4


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    rows = rng.standard_normal((n, DIMENSION)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def fill(fleet: Fleet, entries: int, bucket: BucketKey, vectors: np.ndarray
         ) -> tuple[ShardedL2Store, LocalL2Store]:
    writer = ShardedL2Store(fleet.client(timeout_s=30.0), background=False, max_pending=entries)
    local = LocalL2Store(max_entries=entries + 1)
    for i in range(entries):
        entry = L2Entry(bucket, f"k:{i}", (f"question number {i}",), f"answer {i}", MODEL,
                        vectors[i], time.time())
        writer.put(entry)
        local.put(entry)
    writer.close()
    return ShardedL2Store(fleet.client(timeout_s=10.0), background=False), local


def lookups(fleet: Fleet, table: Table, echo: object, entries: int, rounds: int) -> None:
    rng = np.random.default_rng(entries)
    bucket = BucketKey("bench", "ask", f"bucket-{entries}")
    vectors = unit_rows(rng, entries)
    store, local = fill(fleet, entries, bucket, vectors)
    noise = unit_rows(rng, rounds) * 0.1
    queries = [(v + n) / np.linalg.norm(v + n) for v, n in
               zip(vectors[rng.integers(0, entries, rounds)], noise, strict=True)]
    request = b"x" * (DIMENSION * 4 + 200)  # about a `nearest` request's size
    counter = iter(range(10 ** 9))

    def fleet_lookup() -> float:
        n = next(counter)
        return timed(lambda: store.find(bucket, f"k:new {n}", MODEL,
                                        lambda: queries[n % rounds], K))

    def local_lookup() -> float:
        n = next(counter)
        return timed(lambda: local.find(bucket, f"k:new {n}", MODEL,
                                        lambda: queries[n % rounds], K))

    def bare_call() -> float:
        return timed(lambda: ray.get(echo.ping.remote(request), timeout=10))  # type: ignore[attr-defined]

    found = store.find(bucket, "k:check", MODEL, lambda: vectors[3], K)
    assert found.nearest and found.nearest[0][0].value == "answer 3", "the fleet lost entry 3"
    for _ in range(20):  # warm up both sides
        fleet_lookup(), local_lookup(), bare_call()
    requests_before = store.client.stats().requests
    fleet_s, local_s, bare_s = [], [], []
    for _ in range(rounds):  # the three sides alternate: drift hits them alike
        fleet_s.append(fleet_lookup())
        local_s.append(local_lookup())
        bare_s.append(bare_call())
    per_lookup = (store.client.stats().requests - requests_before) / rounds
    b50, b99 = pct(bare_s)
    l50, l99 = pct(local_s)
    f50, f99 = pct(fleet_s)
    kind = "hnsw" if entries > 2048 else "exact"
    table.add(f"bare 1:1 actor call ({len(request)} B)", f"p50 {b50 * 1e3:.2f} ms, "
              f"p99 {b99 * 1e3:.2f} ms", "yardstick")
    table.add(f"local semantic lookup, {entries:,} entries ({kind})",
              f"p50 {l50 * 1e3:.2f} ms, p99 {l99 * 1e3:.2f} ms", "yardstick")
    ratio = f50 / (b50 + l50)
    table.add(f"fleet semantic lookup, {entries:,} entries", f"p50 {f50 * 1e3:.2f} ms, p99 "
              f"{f99 * 1e3:.2f} ms; {per_lookup:.2f} requests/lookup",
              f"{ratio:.2f}x (call + local)", verdict(ratio, 1.3, False)
              + (", 1 request: met" if per_lookup == 1 else ", 1 request: NOT met"))
    store.find(bucket, "k:7", MODEL, None, K)  # fetched once: the near-cache holds it now
    exact_fleet, exact_local = alternate(
        lambda: timed(lambda: store.find(bucket, "k:7", MODEL, None, K), 20),
        lambda: timed(lambda: local.find(bucket, "k:7", MODEL, None, K), 20), rounds)
    e50, _ = pct(exact_local)
    n50, n99 = pct(exact_fleet)
    table.add("repeated exact lookup: near-cache vs local store",
              f"p50 {n50 * 1e6:.1f} us, p99 {n99 * 1e6:.1f} us", f"{n50 / e50:.2f}x",
              "reported (no round trip)")
    store.close()


def l3_decisions(table: Table, rounds: int, writers: int = 50) -> None:
    targets = [LocalModel("fast"), LocalModel("slow")]
    context = make_context({"tenant": "acme"})
    local, shared = ContextualCache(), SharedContextualCache("bench")
    for cache in (local, shared):
        for _ in range(20):
            cache.record("route", context, targets[0], True, 0.05)
            cache.record("route", context, targets[1], True, 1.0)
    arms = {targets[0]: Arm(10.0, 9.0, 10), targets[1]: Arm(10.0, 5.0, 10)}
    entries = [Entry("route", f"{context.fingerprint}/node-{w}",
                     Stamp(1, f"node-{w}", time.time() + 3600), encode_table(arms))
               for w in range(writers)]
    shared.merge_agent("route", entries)
    shared_s, local_s = alternate(
        lambda: timed(lambda: shared.decide("route", context, targets), 20),
        lambda: timed(lambda: local.decide("route", context, targets), 20), rounds)
    s50, s99 = pct(shared_s)
    l50, _ = pct(local_s)
    table.add("L3 decide, local tables", f"p50 {l50 * 1e6:.1f} us", "yardstick")
    table.add(f"L3 decide with {writers} other nodes' tables", f"p50 {s50 * 1e6:.1f} us, p99 "
              f"{s99 * 1e6:.1f} us", f"{s50 / l50:.2f}x", "reported (no round trip)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--entries", type=int, nargs="+", default=[1000, 10_000])
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, namespace="bench-l2",
             object_store_memory=80 * 1024 * 1024, _node_ip_address="127.0.0.1",
             log_to_driver=False, configure_logging=False)
    fleet = start_fleet(f"bench-l2-{uuid.uuid4().hex[:8]}", 3, 2)
    echo = ray.remote(Echo).options(num_cpus=0).remote()
    ray.get(echo.ping.remote(b""), timeout=60)
    table = Table()
    try:
        for entries in args.entries:
            lookups(fleet, table, echo, entries, args.rounds)
        l3_decisions(table, args.rounds)
    finally:
        fleet.stop()
        ray.shutdown()
        shutil.rmtree(base.RAY_HOME, ignore_errors=True)
    print(f"L2 on the fleet: 3 shards, replication 2, {DIMENSION} dimensions, k={K}, "
          f"{args.rounds} rounds; one noisy 2-core machine\n")
    table.print()


if __name__ == "__main__":
    main()
