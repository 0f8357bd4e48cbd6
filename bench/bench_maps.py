"""Map- and set-heavy RTFS against the same work in CPython, interleaved in rounds.

    python bench/bench_maps.py [--rounds N]

Maps and sets compare keys as RTFS `=` does (1 and 1.0 alike, true apart from 1), which
Python's dict does not; the keys that need it are boxed. This checks that ordinary maps,
with keyword and string keys, pay (almost) nothing for it. Each round runs every RTFS case
and its CPython yardstick once, alternating; the table gives per-call p50 and p99 and the
ratio of the p50s. Not a test: the machine is shared and noisy; read the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from collections.abc import Callable

from rtfs.compiler import compile_program
from rtfs.reader import read
from rtfs.values import Keyword
from rtfs.vm import VM

SETUP = """
(def rows (map (fn [i] {:id i :name (str "n" (mod i 50)) :score (* i 3)}) (range 2000)))
(defn lookups [] (reduce (fn [acc row] (+ acc (get row :score))) 0 rows))
(defn kw-fn [] (reduce + 0 (map :id rows)))
(defn build [] (reduce (fn [acc row] (assoc acc (:id row) (:score row))) {} rows))
(defn literal [] (map (fn [row] {:id (:id row) :twice (* 2 (:score row))}) rows))
(defn destructure [] (reduce + 0 (map (fn [{:keys [id score]}] (+ id score)) rows)))
(defn freqs [] (frequencies (map :name rows)))
(defn members [] (count (filter #(contains? #{"n1" "n2" "n3"} (:name %)) rows)))
"""

K_ID, K_NAME, K_SCORE, K_TWICE = (Keyword(n) for n in ("id", "name", "score", "twice"))
ROWS = [{K_ID: i, K_NAME: f"n{i % 50}", K_SCORE: i * 3} for i in range(2000)]

PY: dict[str, Callable[[], object]] = {
    "lookups": lambda: sum(row.get(K_SCORE) for row in ROWS),
    "kw-fn": lambda: sum(row.get(K_ID) for row in ROWS),
    "build": lambda: _build(),
    "literal": lambda: [{K_ID: r[K_ID], K_TWICE: 2 * r[K_SCORE]} for r in ROWS],
    "destructure": lambda: sum(r.get(K_ID) + r.get(K_SCORE) for r in ROWS),
    "freqs": lambda: Counter(r[K_NAME] for r in ROWS),
    "members": lambda: sum(1 for r in ROWS if r[K_NAME] in {"n1", "n2", "n3"}),
}


def _build() -> dict:
    acc: dict = {}
    for row in ROWS:
        acc = {**acc, row[K_ID]: row[K_SCORE]}  # RTFS maps are immutable: assoc copies
    return acc


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    vm = VM()
    vm.run(compile_program(read(SETUP), resolve_source=vm.source_hash_of))
    cases = {name: (lambda f=vm.globals[name]: vm.call(f, [])) for name in PY}
    samples: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in PY}
    for _ in range(args.rounds):
        for name, py_case in PY.items():
            samples[name][0].append(timed(cases[name]))
            samples[name][1].append(timed(py_case))
    print(f"{'case':<12} {'RTFS p50 ms':>12} {'p99':>8} {'CPython p50':>12} {'p99':>8} "
          f"{'ratio':>7}")
    for name, (rtfs_s, py_s) in samples.items():
        r50, p50 = statistics.median(rtfs_s), statistics.median(py_s)
        r99, p99 = _p99(rtfs_s), _p99(py_s)
        print(f"{name:<12} {r50 * 1e3:>12.2f} {r99 * 1e3:>8.2f} {p50 * 1e3:>12.2f} "
              f"{p99 * 1e3:>8.2f} {r50 / p50:>6.1f}x")


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


if __name__ == "__main__":
    main()
