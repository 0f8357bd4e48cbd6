"""`delegation l2 ...`: calibrate and evaluate the semantic cache from labelled pairs.

  delegation l2 calibrate PAIRS.jsonl [--namespace NS] [--target RATE] [--state-dir D]
  delegation l2 eval PAIRS.jsonl [--namespace NS] [--json] [--state-dir D]
  delegation l2 status [--namespace NS] [--state-dir D]

A pairs file holds lines `{"a": ..., "b": ..., "same": true|false}` (optional `"fn"`).
`calibrate` stores NS's calibration in the state directory and prints its threshold and
bound. `eval` runs each pair through a fresh, empty cache that uses NS's calibration (or the
shipped default): store an answer for `a`, look up `b`; with `--json`, stdout is exactly one
line `{"pairs": n, "false_hits": k, "negatives": m, "hits": h, "positives": p}` where `hits`
counts the positive pairs served (recall = hits / positives).

The state directory is `--state-dir D`, else `$XDG_STATE_HOME/rtfs-delegation`, else
`~/.local/state/rtfs-delegation` (`delegation.config.default_state_dir`). The commands import
numpy and the model only when they run, so `delegation run` does not pay for them. Bad input
(a pairs file, a target, a state file) is one line on stderr and exit 2; a model that cannot
load is exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from delegation.config import default_state_dir
from delegation.l2.config import DEFAULT_MODEL, MODEL_IDS, NAMESPACE, L2Config
from delegation.l2.errors import (
    CacheStateError,
    CalibrationError,
    EmbedderUnavailable,
    PairsFileError,
)

if TYPE_CHECKING:  # the commands import numpy and the model only when they run
    from delegation.l2.book import CalibrationBook
    from delegation.l2.embedder import Embedder
    from delegation.l2.keys import L2Call
    from delegation.l2.pairs import Pair

EVAL_FUNCTION = "l2-eval"
EVAL_TARGET = "l2-eval"


class _BadInput(Exception):
    """Exit status 2, one line."""


def add_parser(subparsers: Any) -> None:
    """Add `l2` and its subcommands to the `delegation` parser's subparsers."""
    l2 = subparsers.add_parser("l2", help="the L2 semantic cache: calibrate, evaluate")
    sub = l2.add_subparsers(dest="l2_command", required=True)
    cal = sub.add_parser("calibrate", help="calibrate a namespace's threshold from pairs")
    cal.add_argument("pairs", metavar="PAIRS.jsonl")
    cal.add_argument("--target", metavar="RATE", help="false-hit rate to aim for (0.01)")
    ev = sub.add_parser("eval", help="false hits and hits of a namespace on pairs")
    ev.add_argument("pairs", metavar="PAIRS.jsonl")
    ev.add_argument("--json", action="store_true", help="one JSON object on stdout")
    status = sub.add_parser("status", help="the calibration and shadow record in force")
    for parser, run in ((cal, cmd_calibrate), (ev, cmd_eval), (status, cmd_status)):
        parser.add_argument("--namespace", metavar="NS", default="default")
        parser.add_argument("--state-dir", metavar="D")
        parser.add_argument("--model", metavar="ID", default=DEFAULT_MODEL,
                            help=f"embedding model ({', '.join(MODEL_IDS)})")
        parser.set_defaults(run=_guarded(run))


def _guarded(run: Any) -> Any:
    def command(args: argparse.Namespace) -> int:
        try:
            return int(run(args))
        except (_BadInput, PairsFileError, CalibrationError, CacheStateError) as err:
            print(f"delegation: {err}", file=sys.stderr)
            return 2
        except EmbedderUnavailable as err:
            print(f"delegation: {err}", file=sys.stderr)
            return 1
    return command


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Compute and store the namespace's calibration."""
    from delegation.l2.calibration import calibrate, score_pairs
    from delegation.l2.pairs import load_pairs

    namespace = _namespace(args)
    target = _target(args.target)
    book = _book(args)
    pairs = load_pairs(args.pairs)
    embedder = _embedder(args)
    scores = score_pairs(pairs, embedder)
    calibration = calibrate(scores, target, namespace=namespace, embedder=embedder,
                            source=f"{args.pairs} ({len(pairs)} pairs)",
                            min_threshold=L2Config().min_threshold)
    book.set(namespace, calibration)
    print(f"namespace {namespace}: {calibration.summary()}")
    if calibration.upper_bound > target:
        print(f"note: with {calibration.negatives} negatives the {calibration.confidence:.0%} "
              f"bound is above the target; more negative pairs would tighten it")
    print(f"model {embedder.model_id} (weights {embedder.weights_sha256[:12]}); "
          f"stored in {book.path}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Run each pair through a fresh cache with the namespace's calibration."""
    from delegation.l2.pairs import load_pairs

    namespace = _namespace(args)
    book = _book(args)
    pairs = load_pairs(args.pairs)
    embedder = _embedder(args)
    counts = evaluate(pairs, embedder, book, namespace)
    if args.json:
        print(json.dumps(counts, separators=(",", ":")))
        return 0
    effective = book.effective(namespace, embedder)
    origin = effective.origin if effective.calibration is not None else "none"
    threshold = effective.threshold
    print(f"namespace {namespace}: {origin} calibration, threshold "
          f"{f'{threshold:.4f}' if threshold is not None else 'none (exact only)'}")
    if effective.note:
        print(f"note: {effective.note}")
    negatives, positives = counts["negatives"], counts["positives"]
    print(f"pairs {counts['pairs']}: false hits {counts['false_hits']}/{negatives}"
          f" ({_share(counts['false_hits'], negatives)}), hits {counts['hits']}/{positives}"
          f" ({_share(counts['hits'], positives)} recall)")
    return 0


def evaluate(pairs: list[Pair], embedder: Embedder, book: CalibrationBook,
             namespace: str) -> dict[str, int]:
    """The eval counts: each pair through a fresh cache (store `a`, look up `b`)."""
    from delegation.l2.cache import SemanticCache
    from delegation.l2.store import LocalL2Store

    config = replace(L2Config(), namespace=namespace, shadow_rate=0.0)
    false_hits = hits = 0
    for pair in pairs:
        cache = SemanticCache(config, embedder, store=LocalL2Store(), book=book)
        fn = pair.fn or EVAL_FUNCTION
        cache.put(_call(namespace, fn, pair.a), "answer")
        found = cache.lookup(_call(namespace, fn, pair.b))
        if found.hit and pair.same:
            hits += 1
        elif found.hit:
            false_hits += 1
    positives = sum(p.same for p in pairs)
    return {"pairs": len(pairs), "false_hits": false_hits, "negatives": len(pairs) - positives,
            "hits": hits, "positives": positives}


def cmd_status(args: argparse.Namespace) -> int:
    """Print the calibration and shadow record in force for the namespace."""
    namespace = _namespace(args)
    book = _book(args)
    embedder = _embedder(args)
    effective = book.effective(namespace, embedder)
    shadow = book.shadow(namespace)
    cal = effective.calibration
    print(f"namespace {namespace} ({embedder.model_id}): {effective.origin} calibration"
          + (f": {cal.summary()}" if cal is not None else ""))
    if cal is not None:
        print(f"  measured on {cal.source}")
    if effective.note:
        print(f"  note: {effective.note}")
    print(f"  shadow checks: {shadow.false_hits} wrong in {shadow.checks}")
    print(f"  semantic hits: {'off: ' + effective.off_reason if effective.off_reason else 'on'}"
          if cal is not None and cal.threshold is not None else "  semantic hits: off")
    return 0


def _call(namespace: str, fn: str, text: str) -> L2Call:
    from delegation.l2.keys import L2Call

    return L2Call(namespace, fn, EVAL_TARGET, "1", (text,), free_text=(0,))


def _namespace(args: argparse.Namespace) -> str:
    if not NAMESPACE.fullmatch(args.namespace):
        raise _BadInput(f"--namespace {args.namespace!r}: a namespace is 1-64 letters, digits, "
                        "'_', '.', '-' starting with a letter or digit")
    return str(args.namespace)


def _target(text: str | None) -> float:
    if text is None:
        return L2Config().target_false_hit_rate
    try:
        value = float(text)
    except ValueError:
        raise _BadInput(f"--target {text!r} is not a number") from None
    if not 0.0 < value < 1.0:
        raise _BadInput(f"--target {text}: a false-hit rate between 0 and 1, e.g. 0.01")
    return value


def _book(args: argparse.Namespace) -> CalibrationBook:
    from delegation.l2.book import CalibrationBook

    state = Path(args.state_dir) if args.state_dir else default_state_dir(os.environ)
    if state.exists() and not state.is_dir():
        raise _BadInput(f"--state-dir {state}: not a directory")
    return CalibrationBook.in_state_dir(state)


def _embedder(args: argparse.Namespace) -> Embedder:
    from delegation.l2.models import make_embedder

    if args.model not in MODEL_IDS:
        raise _BadInput(f"--model {args.model!r}: unknown (known: {', '.join(MODEL_IDS)})")
    return make_embedder(args.model)


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "n/a"
