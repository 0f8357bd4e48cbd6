"""Runs an external RTFS conformance corpus: programs whose comments state expected values.

Each top-level form may be followed by its expectation, as `; Should return X` or
`;; Expected: X`; the first one after a form, before the next form, is that form's (an
expectation after commented-out code belongs to nothing). An expectation names a concrete
value when it starts with an RTFS literal (`42`, `"s"`, `[1 2]`, `{:a 1}`, `#{1}`); text
after the literal is commentary, and "(order may vary)" there makes the comparison ignore
order. `0.333...` and `~3.14` are approximate; `error` means the form must raise an RTFS
error. Anything else ("UUID literal", "Results computed in parallel") is prose and only
recorded. Comparison is strict: 3 is not 3.0, and true is not 1.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtfs.compiler import compile_program
from rtfs.errors import RtfsError
from rtfs.macros import MacroTable
from rtfs.printer import to_readable
from rtfs.reader import Atom, Form, Seq, form_to_value, read_spans
from rtfs.values import Map, RList, Symbol
from rtfs.vm import VM

_EXPECTATION = re.compile(r"^[;\s]*(?:Expected:|Should return)\s*(.*?)\s*$")
_APPROX = re.compile(r"^~?\s*(-?\d+\.(\d+))(?:\.\.\.)|^~\s*(-?\d+\.(\d+))")


@dataclass(frozen=True)
class Expectation:
    kind: str  # "value" | "approx" | "error" | "prose"
    text: str
    value: Any = None
    tolerance: float = 0.0
    unordered: bool = False
    alternatives: tuple[Any, ...] = ()  # other values the commentary accepts: "42 (or [42])"

    @property
    def concrete(self) -> bool:
        return self.kind != "prose"


@dataclass(frozen=True)
class Outcome:
    file: str
    line: int
    source: str
    expectation: Expectation | None
    actual: str  # the printed value, or "!error Kind: message"
    passed: bool | None  # None when there is no concrete expectation

    @property
    def key(self) -> str:
        return f"{self.file}:{self.line}"


def parse_expectation(text: str) -> Expectation:
    if text.lower().startswith("error"):
        return Expectation("error", text)
    approx = _APPROX.match(text)
    if approx:
        number = approx.group(1) or approx.group(3)
        decimals = approx.group(2) or approx.group(4)
        return Expectation("approx", text, float(number), 10.0 ** -len(decimals))
    literal = _leading_literal(text)
    if literal is None:
        return Expectation("prose", text)
    value, rest = literal
    alternative = re.match(r"\s*\(or\s+(.*)\)\s*$", rest)
    others = _leading_literal(alternative.group(1)) if alternative else None
    return Expectation("value", text, value, unordered="order may vary" in rest,
                       alternatives=(others[0],) if others else ())


def _leading_literal(text: str) -> tuple[Any, str] | None:
    """The literal value `text` starts with, and the text after it."""
    for item, _, end in read_spans(text):
        if isinstance(item, Form) and _is_literal(item):
            return form_to_value(item), text[end:]
        return None
    return None


def _is_literal(form: Form) -> bool:
    if isinstance(form, Atom):
        return not isinstance(form.value, Symbol)
    return isinstance(form, Seq) and form.kind != "list" and all(map(_is_literal, form.items))


def _expectation_after(gap: str) -> Expectation | None:
    for line in gap.splitlines():
        stripped = line.strip()
        if not stripped.startswith(";"):
            continue
        match = _EXPECTATION.match(stripped)
        if match:
            return parse_expectation(match.group(1))
    return None


class CorpusError(Exception):
    """A corpus that cannot be run: no such directory, no programs, an unreadable file."""


def run_file(path: Path) -> list[Outcome]:
    """Run every top-level form of one corpus file in one VM, in order."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise CorpusError(f"{path}: not UTF-8 text (byte {err.start})") from err
    except OSError as err:
        raise CorpusError(f"cannot read {path}: {err.strerror or err}") from err
    items = list(read_spans(text))
    vm = VM(out=io.StringIO())
    macros = MacroTable()
    outcomes = []
    for index, (item, start, end) in enumerate(items):
        gap_end = items[index + 1][1] if index + 1 < len(items) else len(text)
        line = text.count("\n", 0, start) + 1
        expectation = _expectation_after(text[end:gap_end])
        actual, value, failed = _evaluate(vm, item, macros)
        passed = None
        if expectation is not None and expectation.concrete:
            passed = _meets(expectation, value, failed)
        source = " ".join(text[start:end].split())
        outcomes.append(Outcome(path.name, line, source, expectation, actual, passed))
    return outcomes


def _evaluate(vm: VM, item: Any, macros: MacroTable) -> tuple[str, Any, bool]:
    try:
        if isinstance(item, RtfsError):
            raise item
        value = vm.run(compile_program([item], resolve_source=vm.source_hash_of,
                                       macros=macros))
    except RtfsError as err:
        return f"!error {err.kind}: {err.message}", None, True
    except (RecursionError, MemoryError) as err:  # the program, not the runner, is at fault
        return f"!error {type(err).__name__}", None, True
    return to_readable(value), value, False


def _meets(expectation: Expectation, value: Any, failed: bool) -> bool:
    if expectation.kind == "error":
        return failed
    if failed:
        return False
    if expectation.kind == "approx":
        return type(value) is float and abs(value - expectation.value) <= expectation.tolerance
    return any(_same(value, expected, expectation.unordered)
               for expected in (expectation.value, *expectation.alternatives))


def _same(value: Any, expected: Any, unordered: bool) -> bool:
    if unordered and type(value) in (tuple, RList):
        return (type(expected) is type(value) and len(expected) == len(value)
                and sorted(map(to_readable, value)) == sorted(map(to_readable, expected)))
    return strict_equal(value, expected)


def strict_equal(actual: Any, expected: Any) -> bool:
    """Equality that also requires the same kinds: 3 is not 3.0, true is not 1."""
    if type(actual) is not type(expected):
        return False
    if type(actual) is float:
        return math.isclose(actual, expected, rel_tol=1e-12) or (
            math.isnan(actual) and math.isnan(expected))
    if type(actual) in (tuple, RList):
        return len(actual) == len(expected) and all(map(strict_equal, actual, expected))
    if isinstance(actual, Map):
        return len(actual) == len(expected) and all(
            k in expected and strict_equal(v, expected[k]) for k, v in actual.items())
    return bool(actual == expected)


def corpus_files(directory: Path) -> list[Path]:
    """The `.rtfs` programs of a corpus directory; CorpusError when there are none."""
    if not directory.is_dir():
        raise CorpusError(f"{directory} is not a directory")
    files = sorted(p for p in directory.glob("*.rtfs") if p.is_file())
    if not files:
        raise CorpusError(f"{directory} holds no .rtfs programs")
    return files


def run_corpus(directory: Path) -> list[Outcome]:
    """Run every program of a corpus directory (CorpusError when it has none)."""
    return [o for path in corpus_files(directory) for o in run_file(path)]


def load_known_failures(path: Path) -> dict[str, str]:
    """`file.rtfs:LINE  reason` per line; `#` starts a comment."""
    known = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        key, _, reason = line.partition(" ")
        if not re.fullmatch(r"[\w.-]+\.rtfs:\d+", key) or not reason.strip():
            raise ValueError(f"{path}:{number}: expected 'file.rtfs:LINE reason', got {raw!r}")
        known[key] = reason.strip()
    return known


def report(outcomes: list[Outcome], known: dict[str, str] | None = None) -> tuple[str, bool]:
    """The printed report, and whether it matches the known failures exactly."""
    known = known or {}
    lines, ok = [], True
    for name in sorted({o.file for o in outcomes}):
        mine = [o for o in outcomes if o.file == name]
        passed = sum(o.passed is True for o in mine)
        failed = sum(o.passed is False for o in mine)
        prose = sum(o.expectation is not None and not o.expectation.concrete for o in mine)
        lines.append(f"{name}: {passed} passed, {failed} failed, {prose} descriptive")
        for o in mine:
            if o.passed is False:
                note = "known: " + known[o.key] if o.key in known else "UNEXPECTED"
                ok &= o.key in known
                wanted = o.expectation.text if o.expectation is not None else ""
                lines.append(f"  FAIL {o.key} {o.source[:60]} expected {wanted!r}"
                             f" got {o.actual[:80]} [{note}]")
            elif o.passed and o.key in known:
                ok = False
                lines.append(f"  PASS {o.key} is listed as a known failure: remove it")
    listed = {o.key for o in outcomes}
    for key in sorted(set(known) - listed):
        ok = False
        lines.append(f"  {key} is listed as a known failure but has no such expectation")
    total_pass = sum(o.passed is True for o in outcomes)
    total_fail = sum(o.passed is False for o in outcomes)
    lines.append(f"{total_pass} passed, {total_fail} failed")
    return "\n".join(lines), ok
