"""L2 semantic cache: the embedding model, calibrated false hits out of sample, GPTCache side by
side, and lookup latency at 1k, 10k and 100k entries.

    python bench/bench_l2.py [--quick]

Data: fow-cache's 600 labelled question pairs (Mabon ap Gwyn, CC BY 4.0; installed by the dev
extra), split in two halves stratified by category (seeded). Thresholds are calibrated on one
half and measured on the other, on (a) fow-cache's traps alone and (b) the traps plus hard
negatives generated from the half's own texts (one number changed, an auxiliary negated, two
names swapped). GPTCache (`pip install -e .[bench]`) runs with its default data manager
(sqlite + faiss), similarity evaluation and threshold, fed our MiniLM vectors: its own default
embedding model is fetched from the Hugging Face hub at run time, which this machine cannot
reach. Lookups exclude embedding (queries are embedded once, before timing) and alternate, in
rounds, with a brute-force numpy scan of the same vectors, the yardstick. Not a test: compare
numbers within one run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from delegation.l2.book import CalibrationBook
from delegation.l2.cache import SemanticCache
from delegation.l2.calibration import (
    Calibration,
    PairScore,
    binomial_upper,
    calibrate,
    required_negatives,
    score_pairs,
)
from delegation.l2.config import L2Config
from delegation.l2.errors import CalibrationError
from delegation.l2.keys import L2Call, split_call
from delegation.l2.labelled import fow_cache_pairs, hard_negatives
from delegation.l2.minilm import MiniLMEmbedder
from delegation.l2.pairs import Pair
from delegation.l2.store import L2Entry, LocalL2Store

TARGETS = (0.01, 0.005, 0.001)
GOAL_FALSE_HITS = 0.015
GOAL_RECALL = 0.20
GOAL_LOOKUP_MS = 1.0


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- the model ---------------------------------------------------------------------------


def model_table() -> MiniLMEmbedder:
    start = time.perf_counter()
    embedder = MiniLMEmbedder()
    cold_s = time.perf_counter() - start
    start = time.perf_counter()
    MiniLMEmbedder()
    warm_s = time.perf_counter() - start
    texts = [p.b for _, p in fow_cache_pairs()][:200]
    times = []
    for text in texts:
        t = time.perf_counter()
        embedder.embed([text])
        times.append((time.perf_counter() - t) * 1e3)
    print("## embedding model\n")
    print("| model id | weights sha256 | load (first / again) | embed p50 / p99, batch 1 |")
    print("|---|---|---|---|")
    print(f"| {embedder.model_id} | {embedder.weights_sha256[:12]}… | {cold_s:.2f} s / "
          f"{warm_s:.2f} s | {statistics.median(times):.1f} / {pct(times, 0.99):.1f} ms |\n")
    return embedder


# --- calibration out of sample ------------------------------------------------------------


def halves(seed: int) -> tuple[list[Pair], list[Pair]]:
    by_category: dict[str, list[Pair]] = defaultdict(list)
    for category, pair in fow_cache_pairs():
        by_category[category].append(pair)
    rng = random.Random(seed)
    first: list[Pair] = []
    second: list[Pair] = []
    for category in sorted(by_category):
        rows = by_category[category][:]
        rng.shuffle(rows)
        first += rows[: len(rows) // 2]
        second += rows[len(rows) // 2:]
    return first, second


def generated(pairs: Sequence[Pair]) -> list[Pair]:
    return [p for _, p in hard_negatives(t for p in pairs for t in (p.a, p.b))]


def served(scores: Sequence[PairScore], threshold: float | None, same: bool) -> tuple[int, int]:
    chosen = [s for s in scores if s.same == same]
    return sum(s.served(threshold) for s in chosen), len(chosen)


def calibration_table(embedder: MiniLMEmbedder) -> tuple[dict[str, float], Calibration]:
    train, test = halves(seed=0)
    train_gen, test_gen = generated(train), generated(test)
    s_train, s_test = score_pairs(train, embedder), score_pairs(test, embedder)
    s_train_gen, s_test_gen = score_pairs(train_gen, embedder), score_pairs(test_gen, embedder)
    print("## false hits out of sample (calibrated on one half, measured on the other)\n")
    print(f"halves: {len(train)} / {len(test)} fow-cache pairs; generated hard negatives "
          f"{len(train_gen)} / {len(test_gen)}\n")
    print("| calibrated on | target | threshold | in-sample false hits (95% bound) | "
          "held-out traps: false hits (95% bound) | held-out generated: false hits | "
          "held-out recall |")
    print("|---|---|---|---|---|---|---|")
    goals: dict[str, float] = {}
    for label, scores in (("fow traps", s_train), ("fow + generated", s_train + s_train_gen)):
        for target in TARGETS:
            row = _calibration_row(embedder, scores, target, s_test, s_test_gen)
            print(f"| {label} | {target:.1%} | " + row[0])
            if label == "fow traps" and target == 0.01:
                goals.update(row[1])
    print()
    _resampled(embedder, s_train + s_test)
    half = calibrate(s_train, 0.01, namespace="bench", embedder=embedder, source="half A")
    return goals, half


def _calibration_row(embedder: MiniLMEmbedder, scores: list[PairScore], target: float,
                     test: list[PairScore], test_gen: list[PairScore]
                     ) -> tuple[str, dict[str, float]]:
    try:
        cal = calibrate(scores, target, namespace="bench", embedder=embedder, source="bench")
    except CalibrationError:
        negatives = sum(not s.same for s in scores)
        return (f"refused: {negatives} negatives, needs {required_negatives(target)} | | | | |",
                {})
    fh, neg = served(test, cal.threshold, False)
    gen_fh, gen_neg = served(test_gen, cal.threshold, False)
    hits, pos = served(test, cal.threshold, True)
    threshold = f"{cal.threshold:.4f}" if cal.threshold is not None else "none"
    text = (f"{threshold} | {cal.false_hits}/{cal.negatives} ({cal.upper_bound:.1%}) | "
            f"{fh}/{neg} = {fh / neg:.2%} ({binomial_upper(fh, neg):.1%}) | "
            f"{gen_fh}/{gen_neg} = {gen_fh / max(gen_neg, 1):.2%} | "
            f"{hits}/{pos} = {hits / pos:.1%} |")
    return text, {"false_hits": fh / neg, "recall": hits / pos}


def _resampled(embedder: MiniLMEmbedder, scores: list[PairScore], rounds: int = 200) -> None:
    rng = random.Random(1)
    fhs, recalls = [], []
    for _ in range(rounds):
        shuffled = scores[:]
        rng.shuffle(shuffled)
        train, test = shuffled[: len(scores) // 2], shuffled[len(scores) // 2:]
        try:
            cal = calibrate(train, 0.01, namespace="bench", embedder=embedder, source="bench")
        except CalibrationError:
            continue
        fh, neg = served(test, cal.threshold, False)
        hits, pos = served(test, cal.threshold, True)
        fhs.append(fh / neg)
        recalls.append(hits / pos)
    print(f"over {len(fhs)} random halvings of fow-cache at a 1% target: held-out false hits "
          f"mean {statistics.mean(fhs):.2%}, p90 {pct(fhs, 0.9):.2%}, max {max(fhs):.2%}; "
          f"recall mean {statistics.mean(recalls):.1%}\n")


# --- GPTCache -----------------------------------------------------------------------------


def gptcache_table(embedder: MiniLMEmbedder, cache: Callable[[], SemanticCache]) -> None:
    print("## side by side: GPTCache 0.1.44 at its defaults vs this L2, held-out half\n")
    try:
        from gptcache import Cache, Config  # type: ignore[import-untyped]
        from gptcache.adapter.api import get, put  # type: ignore[import-untyped]
        from gptcache.manager import manager_factory  # type: ignore[import-untyped]
        from gptcache.processor.pre import get_prompt  # type: ignore[import-untyped]
        from gptcache.similarity_evaluation import (  # type: ignore[import-untyped]
            SearchDistanceEvaluation,
        )
    except ImportError as e:
        print(f"GPTCache not run: {e} (pip install -e '.[bench]')\n")
        return

    def embed(text: str, **_: object) -> np.ndarray:
        return embedder.embed([text])[0]

    def gpt_hit(pair: Pair) -> bool:
        gpt = Cache()
        data = manager_factory("sqlite,faiss", data_dir=tempfile.mkdtemp(prefix="gptcache-"),
                               vector_params={"dimension": embedder.dimension})
        gpt.init(pre_embedding_func=get_prompt, embedding_func=embed, data_manager=data,
                 similarity_evaluation=SearchDistanceEvaluation(), config=Config())
        put(pair.a, "cached", cache_obj=gpt)
        return get(pair.b, cache_obj=gpt) is not None

    def ours_hit(pair: Pair) -> bool:
        fresh = cache()
        fresh.put(_call(pair.a), "cached")
        return fresh.lookup(_call(pair.b)).hit

    _, test = halves(seed=0)
    groups = (("fow traps (wrong hits)", [p for p in test if not p.same]),
              ("generated hard negatives (wrong hits)", generated(test)),
              ("fow positives (hits)", [p for p in test if p.same]))
    print("| pairs | n | GPTCache | this L2 (calibrated on the other half, 1%) |")
    print("|---|---|---|---|")
    for label, pairs in groups:
        gpt = sum(gpt_hit(p) for p in pairs)
        ours = sum(ours_hit(p) for p in pairs)
        print(f"| {label} | {len(pairs)} | {gpt} = {gpt / len(pairs):.1%} | "
              f"{ours} = {ours / len(pairs):.1%} |")
    print()


def _call(text: str) -> L2Call:
    return L2Call("bench", "ask", "remote/model", "1", (text,), free_text=(0,))


# --- lookup latency -----------------------------------------------------------------------


def lookup_table(embedder: MiniLMEmbedder, sizes: Sequence[int], rounds: int) -> float:
    queries = [p.a for _, p in fow_cache_pairs()][:100]
    print("## lookup latency, embedding excluded (per call, interleaved with a numpy scan)\n")
    print("| entries | index | L2 lookup p50 / p99 | brute-force scan p50 / p99 | "
          "ratio p50 | build |")
    print("|---|---|---|---|---|---|")
    p50_at_largest = float("nan")
    for n in sizes:
        cache, matrix, build_s = _filled_cache(embedder, n, queries)
        kinds = set(cache.store.index_kinds().values())  # type: ignore[attr-defined]
        ours, scan = _interleaved(cache, matrix, queries, embedder, rounds)
        p50, scan50 = statistics.median(ours), statistics.median(scan)
        print(f"| {n:,} | {'/'.join(sorted(kinds))} | {p50:.3f} / {pct(ours, 0.99):.3f} ms | "
              f"{scan50:.3f} / {pct(scan, 0.99):.3f} ms | {p50 / scan50:.2f}x | "
              f"{build_s:.0f} s |")
        p50_at_largest = p50
    print()
    return p50_at_largest


def _filled_cache(embedder: MiniLMEmbedder, n: int, queries: list[str]
                  ) -> tuple[SemanticCache, np.ndarray, float]:
    config = replace(L2Config(), namespace="bench", shadow_rate=0.0, max_entries=n + 1000)
    cache = SemanticCache(config, embedder)
    rng = np.random.default_rng(n)
    bucket = split_call(_call(queries[0])).bucket
    start = time.perf_counter()
    vectors = rng.standard_normal((n, embedder.dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query_vectors = embedder.embed(queries)
    for i, q in enumerate(query_vectors[::2]):  # half the queries have a near neighbour
        near = q + 0.05 * vectors[i]
        vectors[i] = near / np.linalg.norm(near)
    texts = [f"{queries[2 * i]} please" if 2 * i < len(queries) else f"stored question {i}"
             for i in range(n)]
    for i in range(n):
        cache.store.put(L2Entry(bucket, f"k{i}", (texts[i],), i, embedder.model_id,
                                vectors[i], 0.0))
    for query in queries:
        cache.lookup(_call(query))  # embeds once; later lookups hit the memo
    return cache, vectors, time.perf_counter() - start


def _interleaved(cache: SemanticCache, matrix: np.ndarray, queries: list[str],
                 embedder: MiniLMEmbedder, rounds: int) -> tuple[list[float], list[float]]:
    query_vectors = embedder.embed(queries)
    ours: list[float] = []
    scan: list[float] = []
    for _ in range(rounds):
        for text, vector in zip(queries, query_vectors, strict=True):
            t = time.perf_counter_ns()
            cache.lookup(_call(text))
            ours.append((time.perf_counter_ns() - t) / 1e6)
            t = time.perf_counter_ns()
            int(np.argmax(matrix @ vector))
            scan.append((time.perf_counter_ns() - t) / 1e6)
    return ours, scan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k entries only")
    args = parser.parse_args()
    embedder = model_table()
    goals, half = calibration_table(embedder)
    book = CalibrationBook(defaults={})
    book.set("bench", half)

    def fresh() -> SemanticCache:
        config = replace(L2Config(), namespace="bench", shadow_rate=0.0)
        return SemanticCache(config, embedder, store=LocalL2Store(), book=book)

    gptcache_table(embedder, fresh)
    sizes = (1_000, 10_000) if args.quick else (1_000, 10_000, 100_000)
    p50 = lookup_table(embedder, sizes, rounds=3 if args.quick else 5)
    print("## goals\n")
    fh, recall = goals.get("false_hits", float("nan")), goals.get("recall", float("nan"))
    print(f"- held-out false hits on fow-cache traps at a 1% target: {fh:.2%} "
          f"(goal <= {GOAL_FALSE_HITS:.1%}: {'met' if fh <= GOAL_FALSE_HITS else 'NOT met'})")
    print(f"- held-out recall at that threshold: {recall:.1%} "
          f"(goal >= {GOAL_RECALL:.0%}: {'met' if recall >= GOAL_RECALL else 'NOT met'})")
    print(f"- lookup p50 at {sizes[-1]:,} entries: {p50:.3f} ms "
          f"(goal <= {GOAL_LOOKUP_MS:.0f} ms: {'met' if p50 <= GOAL_LOOKUP_MS else 'NOT met'})")


if __name__ == "__main__":
    main()
