"""The external CCOS corpus: expectations met, failures all explained, bytecode faithful."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from rtfs import conformance
from rtfs.compiler import compile_program
from rtfs.encoding import decode, encode
from rtfs.errors import RtfsError
from rtfs.printer import to_readable
from rtfs.reader import read_each
from rtfs.vm import VM

KNOWN = Path(__file__).with_name("conformance_known_failures.txt")


@pytest.fixture(scope="module")
def outcomes(request):
    corpus = request.getfixturevalue("corpus")
    return conformance.run_corpus(corpus)


def test_corpus_meets_its_expectations_except_the_explained_ones(outcomes):
    known = conformance.load_known_failures(KNOWN)
    text, matches = conformance.report(outcomes, known)
    concrete = [o for o in outcomes if o.passed is not None]
    passed = sum(o.passed for o in concrete)
    assert len(concrete) >= 490, text  # the corpus has about 500 concrete expectations
    assert passed / len(concrete) >= 0.90, text
    assert matches, text  # no unlisted failure, no listed expectation that now passes


def test_every_known_failure_has_a_reason():
    for key, reason in conformance.load_known_failures(KNOWN).items():
        assert len(reason.split()) >= 5, key


@pytest.mark.parametrize("text, kind, value", [
    ("15", "value", 15), ('"x" (with side effect)', "value", "x"),
    ("[1 2] computed in parallel", "value", (1, 2)), ("0.333...", "approx", 0.333),
    ("~3.14286 or ratio representation", "approx", 3.14286), ("error", "error", None),
    ("UUID literal", "prose", None), ("Infinity (if supported)", "prose", None),
])
def test_expectation_notations(text, kind, value):
    expectation = conformance.parse_expectation(text)
    assert expectation.kind == kind and expectation.value == value


def test_alternatives_and_order_commentary():
    alt = conformance.parse_expectation("42 (or [42])")
    assert alt.value == 42 and alt.alternatives == ((42,),)
    assert conformance.parse_expectation("[:a :b] (order may vary)").unordered


def test_strict_comparison_keeps_ints_floats_and_booleans_apart():
    assert not conformance.strict_equal(3, 3.0)
    assert not conformance.strict_equal(1, True)
    assert conformance.strict_equal((1, 2.0), (1, 2.0))


def _run_each(vm: VM, codes: list) -> list[str]:
    results = []
    for code in codes:
        try:
            results.append(to_readable(vm.run(code)) if not isinstance(code, RtfsError)
                           else f"!{code.kind}")
        except RtfsError as err:
            results.append(f"!{err.kind}: {err.message}")
    return results


def test_every_corpus_program_runs_the_same_from_decoded_bytecode(corpus):
    for path in sorted(corpus.glob("*.rtfs")):
        direct_vm, decoded_vm = VM(out=io.StringIO()), VM(out=io.StringIO())
        direct, decoded = [], []
        for item in read_each(path.read_text(encoding="utf-8")):
            if isinstance(item, RtfsError):
                direct.append(item)
                decoded.append(item)
                continue
            code = compile_program([item])
            direct.append(code)
            decoded.append(decode(encode(code)))
        assert _run_each(direct_vm, direct) == _run_each(decoded_vm, decoded), path.name
