"""Memory stays linear in the input: measured as peak RSS of a fresh subprocess.

Each measurement runs in its own process so that nothing else this test session allocated
counts. The thresholds are the ones the hardening issue names: a program holding an 8 MiB
string literal evaluates under 400 MB; reading a source peaks below 20 times its size. Every
shape is read and then each top-level form made once. The only timed assertion is a generous
sanity bound (a 50 MB file read in under 30 s; it takes a few seconds); the speed per shape is
measured by `bench/bench_reader.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rtfs.reader import read

MIB = 1024 * 1024

# The child reports its peak resident set (VmHWM) before reading, after reading and then
# making every top-level form once (one at a time, as `read_each` gives them), and the
# seconds the read took; the file is loaded inside the measured span.
_READ_CHILD = textwrap.dedent("""
    import json, sys, time
    from rtfs.reader import read

    def peak_kib():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])

    before = peak_kib()
    start = time.monotonic()
    with open(sys.argv[1], encoding="utf-8") as source:
        forms = read(source.read())
    seconds = time.monotonic() - start
    read_kib = peak_kib()
    made = sum(1 for form in forms)
    print(json.dumps({"before_kib": before, "read_kib": read_kib, "after_kib": peak_kib(),
                      "forms": len(forms), "made": made, "seconds": seconds}))
""")

# Runs a command as a child and reports that child's peak RSS (RUSAGE_CHILDREN of a process
# that has no other children).
_PEAK_OF_CHILD = textwrap.dedent("""
    import json, resource, subprocess, sys
    result = subprocess.run(sys.argv[1:], check=False, capture_output=True, text=True)
    print(json.dumps({"status": result.returncode, "stdout": result.stdout,
                      "stderr": result.stderr,
                      "peak_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
""")


def peak_of(command: list[str]) -> dict:
    """Run `command` as the only child of a fresh process: its status, output and peak RSS
    (a child forked from this test process would count this process's pages too)."""
    result = subprocess.run([sys.executable, "-c", _PEAK_OF_CHILD, *command],
                            check=False, capture_output=True, text=True, timeout=600)
    return json.loads(result.stdout)


def measure_read(path: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", _READ_CHILD, str(path)], check=False,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def repeat_to(unit: str, size: int) -> str:
    return unit * (size // len(unit) + 1)


def realistic_code(size: int) -> str:
    """Plans as people write them: definitions, lets, maps, calls, comments, indentation."""
    unit = textwrap.dedent("""
        ;; Score each document and keep the ones worth summarising.
        (defn score-document [doc weights]
          (let [{:keys [title body tags] :or {tags []}} doc
                words (count (split body " "))
                bonus (reduce + 0 (map (fn [t] (get weights t 0)) tags))]
            {:title title :words words :score (+ (* 0.5 words) bonus)}))

        (def weights {:urgent 10 :customer 5 :internal -2})
        (let [docs [{:title "Outage report" :body "the api was down for ten minutes"
                     :tags [:urgent :customer]}
                    {:title "Lunch" :body "pizza on friday" :tags [:internal]}]]
          (->> docs
               (map #(score-document % weights))
               (filter (fn [d] (> (:score d) 3)))
               (sort-by :score)))
        """)
    return repeat_to(unit, size)


def numbered(unit: str, size: int) -> str:
    """`unit` formatted with 0, 1, 2, ... until `size` characters: names all different."""
    parts, total, index = [], 0, 0
    while total < size:
        parts.append(unit.format(index))
        total += len(parts[-1])
        index += 1
    return "".join(parts)


def deep(levels: int) -> str:
    return "".join(f"(f{i} " for i in range(levels)) + "x" + ")" * levels + "\n"


SHAPES = {
    "string literal": lambda n: '(def s "' + repeat_to("plain text, then some more ", n) + '")',
    "string with escapes": lambda n: '(def s "' + repeat_to('line\\n\\t\\"quoted\\" \\\\ ', n)
                                     + '")',
    "string of \\u escapes": lambda n: '(def s "' + repeat_to("\\u4e2d\\u00e9\\ud83d\\ude00", n)
                                      + '")',
    "unicode string": lambda n: '(def s "' + repeat_to("héllo wörld ∑ 😀 ", n) + '")',
    "realistic code": realistic_code,
    "vector of numbers": lambda n: "[" + repeat_to("1 22 333 4444 -5 6.5 ", n) + "]",
    "map of keywords to strings": lambda n: "{" + "".join(
        f':key-{i} "value {i}" ' for i in range(n // 22)) + "}",
    "nested data": lambda n: "[" + repeat_to('{:id 1 :tags [:a :b] :pos [1.5 2.5]} ', n) + "]",
    "comments and blank lines": lambda n: repeat_to(";; a comment line\n\n#| block |#\n", n)
                                          + "42",
    "generated definitions": lambda n: "".join(f"(defn f{i} [a b] (+ a (* b {i})))\n"
                                               for i in range(n // 36)),
    "calls with maps": lambda n: repeat_to('(send {:to "ops" :level :warn :n 3})\n', n),
    # adversarial shapes: many tiny forms, one huge form of tiny ones, deep nesting, ...
    "many tiny forms": lambda n: repeat_to("(+ 1 2)\n", n),
    "one-character forms": lambda n: repeat_to("1\n", n),
    "one huge form of tiny ones": lambda n: "(do " + repeat_to("(f x) ", n) + ")",
    "deep nesting": lambda n: repeat_to(deep(120), n),
    "long vector of distinct symbols": lambda n: "[" + numbered("s{0} ", n) + "]",
    "map of distinct keywords": lambda n: "{" + numbered(":k{0} :v{0} ", n) + "}",
    "comments between tiny forms": lambda n: repeat_to(";; c\n#| b (|# x ; (\n", n),
    "metadata, quotes, discards": lambda n: repeat_to(
        "(def ^:private x 'y) ^{:doc \"d\"} (g `(h ~z)) #_ (f x) (g #_ y z)\n", n),
    "other numbers and annotations": lambda n: repeat_to(
        "(let [x:int 0x1F y 1/2 z -2.5e-3] [##Inf .5 x:])\n", n),
}


# Forms made of these hold one interned name (rtfs.values: ~150 bytes, kept for the life of
# the process) per few bytes of source, whatever the reader does: for them, `read` is held to
# the bound, and making the one top-level form they are is not.
INTERNED_NAMES = {"long vector of distinct symbols", "map of distinct keywords"}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_reading_peaks_below_20_times_the_source(tmp_path, shape):
    source = tmp_path / "source.rtfs"
    source.write_text(SHAPES[shape](4 * MIB), encoding="utf-8")
    size_kib = source.stat().st_size / 1024
    report = measure_read(source)
    assert report["forms"] == report["made"] >= 1
    growth = report["read_kib"] - report["before_kib"]
    assert growth < 20 * size_kib, (shape, growth / size_kib)
    if shape not in INTERNED_NAMES:
        growth = report["after_kib"] - report["before_kib"]
        assert growth < 20 * size_kib, ("made", shape, growth / size_kib)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_shape_reads_the_same_with_the_plain_patterns_or_without(shape):
    text = SHAPES[shape](24 * 1024)
    assert list(read(text, use_plain=True)) == list(read(text, use_plain=False))


def test_a_50_mb_file_reads_in_under_30_seconds(tmp_path):
    source = tmp_path / "big.rtfs"
    source.write_text(SHAPES["string with escapes"](50 * 1000 * 1000) + "\n"
                      + realistic_code(100_000), encoding="utf-8")
    report = measure_read(source)
    assert report["seconds"] < 30, report  # a sanity bound: this takes a few seconds
    assert report["after_kib"] - report["before_kib"] < 20 * source.stat().st_size / 1024


def test_a_program_holding_an_8_mib_string_evaluates_under_400_mb(tmp_path):
    program = tmp_path / "big-string.rtfs"
    program.write_text('(def s "' + "x" * (8 * MIB) + '")\n(count s)\n', encoding="utf-8")
    command = [sys.executable, "-m", "rtfs", "eval", str(program)]
    report = peak_of(command)
    assert (report["status"], report["stdout"]) == (0, f"{8 * MIB}\n"), report["stderr"]
    assert report["peak_kib"] < 400 * 1024, report["peak_kib"]
