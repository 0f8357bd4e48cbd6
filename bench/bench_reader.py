"""Reader throughput and memory per kind of source, each read in a fresh process.

    python bench/bench_reader.py [--mib N]

For each shape of source prints its size, the read time, MB/s, and the peak resident set the
read added, as a multiple of the source size (the goal: below 20x for any source; a 50 MB
file read in under 30 s). Not a test: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

CHILD = textwrap.dedent("""
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
        read(source.read())
    print(json.dumps({"grew_kib": peak_kib() - before, "seconds": time.monotonic() - start}))
""")

CODE = textwrap.dedent("""
    ;; Score each document and keep the ones worth summarising.
    (defn score-document [doc weights]
      (let [{:keys [title body tags] :or {tags []}} doc
            words (count (split body " "))
            bonus (reduce + 0 (map (fn [t] (get weights t 0)) tags))]
        {:title title :words words :score (+ (* 0.5 words) bonus)}))
    (score-document {:title "t" :body "a b c" :tags [:urgent]} {:urgent 10})
    """)


def repeat_to(unit: str, size: int) -> str:
    return unit * (size // len(unit) + 1)


SHAPES = {
    "string literal": lambda n: '(def s "' + repeat_to("plain text ", n) + '")',
    "string, escapes": lambda n: '(def s "' + repeat_to('a\\n\\t\\"q\\" \\\\ ', n) + '")',
    "realistic code": lambda n: repeat_to(CODE, n),
    "vector of numbers": lambda n: "[" + repeat_to("1 22 333 4444 -5 6.5 ", n) + "]",
    "nested data": lambda n: "[" + repeat_to("{:id 1 :tags [:a :b] :pos [1.5 2.5]} ", n) + "]",
    "dense calls (+ 1 2)": lambda n: repeat_to("(+ 1 2)\n", n),
    "generated (def xN N)": lambda n: "".join(f"(def x{i} {i})\n" for i in range(n // 15)),
    "one (do ...) of calls": lambda n: "(do " + repeat_to("(f x) ", n) + ")",
    "symbols vector": lambda n: "[" + repeat_to("alpha beta gamma ", n) + "]",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=float, default=4.0, help="size of each source")
    args = parser.parse_args()
    size = int(args.mib * 1024 * 1024)
    print(f"{'source':<22} {'MB':>6} {'seconds':>8} {'MB/s':>6} {'peak / size':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "source.rtfs"
        for name, make in SHAPES.items():
            path.write_text(make(size), encoding="utf-8")
            nbytes = path.stat().st_size
            out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True,
                                 text=True, check=True).stdout
            report = json.loads(out)
            mb = nbytes / 1e6
            print(f"{name:<22} {mb:>6.1f} {report['seconds']:>8.2f} "
                  f"{mb / report['seconds']:>6.1f} {report['grew_kib'] * 1024 / nbytes:>11.1f}x")


if __name__ == "__main__":
    main()
