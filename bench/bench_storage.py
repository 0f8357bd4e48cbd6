"""Storage benchmark: prints tables, asserts nothing (it is not a timed test).

    python bench/bench_storage.py [--quick]

Starts its own moto S3 server and js-ipfs daemon on 127.0.0.1 (`storage.testservers`, the
same helpers the tests use; run `infra/ipfs/install` first), then measures:

- put and get of 1 KiB and 1 MiB blobs for every backend;
- `S3Store.get` against a raw `boto3` `get_object` of the same key with the same client
  (goal: <= 1.2x), and `IPFSStore.get` against a raw RPC `cat` of the same CID;
- the tiered store's local hit latency (goal: p50 <= 100 us for 1 KiB).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage import LocalStore, MemoryStore, TieredStore, open_store
from storage.testservers import IPFSDaemon, MotoServer

SIZES = {"1 KiB": 1 << 10, "1 MiB": 1 << 20}


def timings_us(fn: Callable[[int], Any], n: int) -> list[float]:
    """Call fn(i) n times (after one warm-up call) and return each duration in us."""
    fn(-1)
    out = []
    for i in range(n):
        start = time.perf_counter_ns()
        fn(i)
        out.append((time.perf_counter_ns() - start) / 1000)
    return out


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


def p90(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=10)[-1] if len(samples) > 1 else samples[0]


def fmt(us: float) -> str:
    return f"{us:9.1f} us" if us < 10_000 else f"{us / 1000:9.2f} ms"


def bench_backend(name: str, store: Any, size: int, n: int) -> list[tuple]:
    """put of n distinct blobs, then get of them."""
    blobs = [os.urandom(size) for _ in range(n + 1)]
    ids: list[str] = []
    put = timings_us(lambda i: ids.append(store.put(blobs[i])), n)
    get = timings_us(lambda i: store.get(ids[i]), n)
    label = next(k for k, v in SIZES.items() if v == size)
    return [(name, "put", label, n, put), (name, "get", label, n, get)]


def print_rows(title: str, rows: list[tuple]) -> None:
    print(f"\n{title}")
    print(f"{'backend':<22}{'op':<5}{'size':>7}{'n':>6}{'p50':>14}{'p90':>14}{'mean':>14}")
    for name, op, label, n, samples in rows:
        print(
            f"{name:<22}{op:<5}{label:>7}{n:>6}{fmt(p50(samples)):>14}{fmt(p90(samples)):>14}"
            f"{fmt(statistics.fmean(samples)):>14}"
        )


def compare(
    title: str, ours: Callable[[int], Any], raw: Callable[[int], Any], n: int, goal: float | None
) -> str:
    """Interleave the two callables in rounds so drift on a noisy machine hits both."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(5):
        a += timings_us(ours, max(n // 5, 2))
        b += timings_us(raw, max(n // 5, 2))
    ratio = p50(a) / p50(b)
    verdict = ""
    if goal is not None:
        verdict = f"  (goal <= {goal:.1f}x: {'met' if ratio <= goal else 'NOT met'})"
    return f"{title:<42}{fmt(p50(a))}  vs {fmt(p50(b))}  = {ratio:5.2f}x{verdict}"


def s3_vs_raw(store: Any, client: Any, label: str, n: int) -> str:
    """`S3Store.get` against `get_object` of the same key through the same client."""
    blob_id = store.put(os.urandom(SIZES[label]))
    key = store.blob_key(blob_id)

    def raw(_: int) -> bytes:
        return client.get_object(Bucket=store.bucket, Key=key)["Body"].read()

    return compare(
        f"S3Store.get vs boto3 get_object, {label}", lambda _: store.get(blob_id), raw, n, 1.2
    )


def ipfs_vs_raw(store: Any, label: str, n: int) -> str:
    """`IPFSStore.get` against an RPC `cat` of the same CID through the same client."""
    blob_id = store.put(os.urandom(SIZES[label]))
    cid = store.cid_of(blob_id)
    return compare(
        f"IPFSStore.get vs RPC cat, {label}",
        lambda _: store.get(blob_id),
        lambda _: store.client.cat(cid),
        n,
        None,
    )


def tier_hits(tier: TieredStore, n: int) -> str:
    """Latency of a local hit of a 1 KiB blob."""
    blob_id = tier.put(os.urandom(1 << 10))
    hits = timings_us(lambda _: tier.get(blob_id), n)
    verdict = "met" if p50(hits) <= 100 else "NOT met"
    return (
        f"tiered local hit, 1 KiB: p50 {p50(hits):.1f} us, p90 {p90(hits):.1f} us "
        f"(goal p50 <= 100 us: {verdict})"
    )


def open_stores(tmp: Path, s3_client: Any, api_addr: str) -> dict[str, Any]:
    """Every backend, on the given servers and below `tmp`."""
    s3_client.create_bucket(Bucket="bench")
    return {
        "memory": MemoryStore(),
        "local (fsync)": LocalStore(tmp / "local"),
        "local (no fsync)": LocalStore(tmp / "local-nofsync", fsync=False),
        "s3 (moto http)": open_store("s3://bench/l4", client=s3_client),
        "ipfs (js-ipfs rpc)": open_store("ipfs:///bench", api_addr=api_addr),
        "tiered (local+s3)": TieredStore(
            open_store("s3://bench/tiered", client=s3_client), tmp / "tier"
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    quick = parser.parse_args(argv).quick
    counts = {"1 KiB": 50 if quick else 200, "1 MiB": 5 if quick else 20}
    with (
        tempfile.TemporaryDirectory() as tmp,
        MotoServer() as moto,
        IPFSDaemon(Path(tmp) / "ipfs") as daemon,
    ):
        run(Path(tmp), moto.client(), daemon.api_addr, counts, quick)


def run(tmp: Path, s3_client: Any, api_addr: str, counts: dict[str, int], quick: bool) -> None:
    """Measure and print every table."""
    stores = open_stores(tmp, s3_client, api_addr)
    rows = []
    for label, n in counts.items():
        for name, store in stores.items():
            rows += bench_backend(name, store, SIZES[label], n)
    print_rows("put/get per backend (distinct blobs; get of blobs just put)", rows)
    print("\nstore vs raw client on the same server (p50, interleaved rounds)")
    for label, n in counts.items():
        print(s3_vs_raw(stores["s3 (moto http)"], s3_client, label, max(n, 40)))
        print(ipfs_vs_raw(stores["ipfs (js-ipfs rpc)"], label, max(n, 40)))
    print("\n" + tier_hits(stores["tiered (local+s3)"], 500 if quick else 2000))


if __name__ == "__main__":
    main()
