"""Reader throughput and memory per shape of source, each read in a fresh process.

    python bench/bench_reader.py [--mib N] [--shapes NAME,...]

For each shape of source prints its size, the seconds `read` took, MB/s, and the peak
resident set reading added as a multiple of the source size: after `read` alone, and after
also making every top-level form (`list(forms)`, as the compiler and hashing do; a list
form's items are read only when asked for). The goals (hardening issue, item 6): below 20x
for any source, and a 50 MB file read in under 30 s (at least 50 / 30 = 1.7 MB/s). Not a
test: the machine is shared and noisy.
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
        forms = read(source.read())
    seconds = time.monotonic() - start
    read_kib = peak_kib() - before
    made = list(forms)
    print(json.dumps({"read_kib": read_kib, "made_kib": peak_kib() - before,
                      "seconds": seconds, "forms": len(made)}))
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


def numbered(make: str, size: int) -> str:
    """`make` formatted with 0, 1, 2, ... until `size` characters."""
    parts, total, index = [], 0, 0
    while total < size:
        part = make.format(index)
        parts.append(part)
        total += len(part)
        index += 1
    return "".join(parts)


def deep(levels: int) -> str:
    return "".join(f"(f{i} " for i in range(levels)) + "x" + ")" * levels + "\n"


SHAPES = {
    "string literal": lambda n: '(def s "' + repeat_to("plain text ", n) + '")',
    "string with escapes": lambda n: ('(def s "' + repeat_to('a\\n\\t\\"q\\" \\\\ \\u00e9', n)
                                      + '")'),
    "realistic code": lambda n: repeat_to(CODE, n),
    "vector of numbers": lambda n: "[" + repeat_to("1 22 333 4444 -5 6.5 ", n) + "]",
    "other numbers": lambda n: "[" + repeat_to("0x1F 1/2 1e5 -2.5E-3 .5 ##Inf ", n) + "]",
    "nested data": lambda n: "[" + repeat_to("{:id 1 :tags [:a :b] :pos [1.5 2.5]} ", n) + "]",
    "dense calls (+ 1 2)": lambda n: repeat_to("(+ 1 2)\n", n),
    "one-char forms": lambda n: repeat_to("1\n", n),
    "generated (def xN N)": lambda n: numbered("(def x{0} {0})\n", n),
    "one (do ...) of calls": lambda n: "(do " + repeat_to("(f x) ", n) + ")",
    "deep nesting": lambda n: repeat_to(deep(100), n),
    "symbols vector": lambda n: "[" + repeat_to("alpha beta gamma ", n) + "]",
    "distinct symbols": lambda n: "[" + numbered("s{0} ", n) + "]",
    "map of keywords": lambda n: "{" + numbered(":k{0} :v{0} ", n) + "}",
    "comments": lambda n: repeat_to(";; a comment\n#| a (block) |#\n(f x) ; after\n", n),
    "metadata and quotes": lambda n: repeat_to("(def ^:private x 'y) ^{:doc \"d\"} (g `(h ~z))\n",
                                            n),
    "discards #_": lambda n: repeat_to("#_ (f x) (g #_ y z)\n", n),
    "annotated and unicode": lambda n: repeat_to("(let [x:int 1 é \"ü\"] (λ x é))\n", n),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=float, default=4.0, help="size of each source")
    parser.add_argument("--shapes", default="", help="comma-separated shape names (all)")
    args = parser.parse_args()
    size = int(args.mib * 1024 * 1024)
    wanted = [s for s in args.shapes.split(",") if s] or list(SHAPES)
    print(f"{'source':<22} {'MB':>6} {'forms':>9} {'seconds':>8} {'MB/s':>6} "
          f"{'read/size':>10} {'+made/size':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "source.rtfs"
        for name in wanted:
            path.write_text(SHAPES[name](size), encoding="utf-8")
            nbytes = path.stat().st_size
            out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True,
                                 text=True, check=True).stdout
            report = json.loads(out)
            mb = nbytes / 1e6
            print(f"{name:<22} {mb:>6.1f} {report['forms']:>9} {report['seconds']:>8.2f} "
                  f"{mb / report['seconds']:>6.1f} {report['read_kib'] * 1024 / nbytes:>9.1f}x "
                  f"{report['made_kib'] * 1024 / nbytes:>10.1f}x", flush=True)


if __name__ == "__main__":
    main()
