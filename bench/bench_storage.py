"""Storage benchmark: prints tables, asserts nothing (it is not a timed test).

    python bench/bench_storage.py [--quick]

Starts its own moto S3 server and js-ipfs daemon on 127.0.0.1 (`storage.testservers`, the
same helpers the tests use; run `infra/ipfs/install` first), then measures:

- put and get of 1 KiB and 1 MiB blobs for every backend;
- `S3Store.get` against a raw `boto3` `get_object` of the same key with the same client
  (goal: <= 1.2x), and `IPFSStore.get` against the raw RPC it makes (`files/read` of the same
  MFS path; goal: <= 1.2x), with a raw `cat` of the CID for reference;
- the tiered store's local hit latency (goal: p50 <= 100 us for 1 KiB);
- the outage latch: what the first call on a dead store costs (refused port; a port that
  accepts and never answers, with read_timeout_s=1), and a call on a latched store against
  a `BlobNotFound` from a `MemoryStore` (goal: <= 3x: failing at once costs no more than a
  local miss).

Per-call latencies are p50 and p99; compared pairs run interleaved in rounds.
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

from storage import BlobNotFound, LocalStore, MemoryStore, StoreDown, TieredStore, open_store
from storage.testservers import IPFSDaemon, MotoServer, SilentServer, free_port

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


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[-1] if len(samples) > 1 else samples[0]


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
    print(f"{'backend':<22}{'op':<5}{'size':>7}{'n':>6}{'p50':>14}{'p99':>14}{'mean':>14}")
    for name, op, label, n, samples in rows:
        print(
            f"{name:<22}{op:<5}{label:>7}{n:>6}{fmt(p50(samples)):>14}{fmt(p99(samples)):>14}"
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
    return (
        f"{title:<46}p50 {fmt(p50(a))} vs {fmt(p50(b))} = {ratio:5.2f}x"
        f"  p99 {fmt(p99(a))} vs {fmt(p99(b))}{verdict}"
    )


def s3_vs_raw(store: Any, client: Any, label: str, n: int) -> str:
    """`S3Store.get` against `get_object` of the same key through the same client."""
    blob_id = store.put(os.urandom(SIZES[label]))
    key = store.blob_key(blob_id)

    def raw(_: int) -> bytes:
        return client.get_object(Bucket=store.bucket, Key=key)["Body"].read()

    return compare(
        f"S3Store.get vs boto3 get_object, {label}", lambda _: store.get(blob_id), raw, n, 1.2
    )


def ipfs_vs_raw(store: Any, label: str, n: int) -> list[str]:
    """`IPFSStore.get` against the RPC it makes (`files/read` of the same MFS path) through the
    same client, and against a raw `cat` of the CID (what a remembered CID would cost)."""
    blob_id = store.put(os.urandom(SIZES[label]))
    path, cid = f"{store.root}/blobs/{blob_id}", store.cid_of(blob_id)
    return [
        compare(
            f"IPFSStore.get vs RPC files/read, {label}",
            lambda _: store.get(blob_id),
            lambda _: store.client.files.read(path),
            n,
            1.2,
        ),
        compare(
            f"IPFSStore.get vs RPC cat, {label}",
            lambda _: store.get(blob_id),
            lambda _: store.client.cat(cid),
            n,
            None,
        ),
    ]


def tier_hits(tier: TieredStore, n: int) -> str:
    """Latency of a local hit of a 1 KiB blob."""
    blob_id = tier.put(os.urandom(1 << 10))
    hits = timings_us(lambda _: tier.get(blob_id), n)
    verdict = "met" if p50(hits) <= 100 else "NOT met"
    return (
        f"tiered local hit, 1 KiB: p50 {p50(hits):.1f} us, p99 {p99(hits):.1f} us "
        f"(goal p50 <= 100 us: {verdict})"
    )


def first_failure_ms(store: Any) -> float:
    """Milliseconds the first call on a dead store takes to raise `StoreDown`."""
    start = time.perf_counter_ns()
    try:
        store.get("0" * 32)
    except StoreDown:
        return (time.perf_counter_ns() - start) / 1e6
    raise RuntimeError(f"{store.uri} did not report an outage")


def dead_stores(silent_url: str, silent_port: int) -> dict[str, Any]:
    """S3 and IPFS stores on a refused port and on a port that never answers."""
    refused = free_port()
    s3 = {"region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
    return {
        "s3, refused port": open_store(
            "s3://bench/l4", endpoint_url=f"http://127.0.0.1:{refused}", **s3
        ),
        "ipfs, refused port": open_store(f"ipfs://127.0.0.1:{refused}/bench"),
        "s3, never answers (read 1 s)": open_store(
            "s3://bench/l4", endpoint_url=silent_url, read_timeout_s=1.0, **s3
        ),
        "ipfs, never answers (read 1 s)": open_store(
            f"ipfs://127.0.0.1:{silent_port}/bench", read_timeout_s=1.0
        ),
    }


def outage_rows(n: int) -> list[str]:
    """The first failure on each dead store, then latched calls against a local miss."""
    lines = [f"{'dead store':<34}{'first call':>14}   then every call (latched)"]
    memory = MemoryStore()

    def local_miss(_: int) -> None:
        try:
            memory.get("0" * 32)
        except BlobNotFound:
            pass

    with SilentServer() as silent:
        for name, store in dead_stores(silent.url, silent.port).items():
            first = first_failure_ms(store)

            def latched(_: int, store: Any = store) -> None:
                try:
                    store.get("0" * 32)
                except StoreDown:
                    pass

            row = compare("", latched, local_miss, n, 3.0).strip()
            lines.append(f"{name:<34}{first:11.0f} ms   {row}")
    return lines


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
        print("\n".join(ipfs_vs_raw(stores["ipfs (js-ipfs rpc)"], label, max(n, 40))))
    print("\n" + tier_hits(stores["tiered (local+s3)"], 500 if quick else 2000))
    print("\noutage latch (latched call vs a MemoryStore miss; p50 and p99 per call)")
    print("\n".join(outage_rows(500 if quick else 5000)))


if __name__ == "__main__":
    main()
