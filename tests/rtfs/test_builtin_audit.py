"""Every builtin, called with every mix of awkward arguments, raises only RTFS errors.

A Python exception escaping a builtin (TypeError, OverflowError, ValueError, ...) is a bug: the
user would see Python's wording, or, once the VM maps unexpected exceptions to internal
errors, an internal error. Arity comes from each builtin's signature and is checked by the VM
before the call; here the calls go straight to the Python function, with the argument counts
the signature admits, so that the function's own checks are what is tested.
"""

from __future__ import annotations

import io
import itertools
import math
import re

import pytest

from rtfs.errors import ArityError, RtfsError
from rtfs.printer import preview
from rtfs.stdlib import BUILTINS
from rtfs.values import Builtin, Keyword, Map, RList, make_set
from rtfs.vm import VM, Execution
from tests.rtfs.conftest import evaluate

_VM = VM(out=io.StringIO())
IDENTITY = evaluate("(fn [x] x)", _VM)
FAILING = evaluate("(fn [& xs] (/ 1 0))", _VM)
BIG = 10**5000

SMALL_SAMPLES = [None, True, 0, 2, -1, 1.5, math.nan, math.inf, BIG, "", "ab", Keyword("k"),
                 (), (1, 2), RList((3,)), Map(), Map({Keyword("a"): 1, True: 2}),
                 make_set([1, True]), BUILTINS["inc"], IDENTITY]
TRIPLE_SAMPLES = [None, 1, -2, 0.5, math.inf, "ab", Keyword("a"), (1, "x"), Map({1: 2}),
                  frozenset({1}), BUILTINS["+"], FAILING]

# Builtins whose cost grows with an argument: called with small numbers only.
_SLOW = {"thread/sleep", "factorial", "pow", "range", "numbers"}


def argument_lists(fn: Builtin):
    top = fn.max_args if fn.max_args is not None else fn.min_args + 2
    for argc in range(fn.min_args, min(top, 3) + 1):
        samples = SMALL_SAMPLES if argc <= 2 else TRIPLE_SAMPLES
        if fn.name in _SLOW:
            samples = [None, 0, 1, -1, 2.5, math.nan, math.inf, "a", (1,), Keyword("k")]
        yield from itertools.product(samples, repeat=argc)


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_raises_only_rtfs_errors(name):
    fn = BUILTINS[name]
    leaks = []
    for args in argument_lists(fn):
        execution = Execution(_VM)
        try:
            fn.fn(execution, *args) if fn.needs_vm else fn.fn(*args)
        except RtfsError:
            pass
        except Exception as err:  # noqa: BLE001 - the point: anything else is a leak
            leaks.append(f"({name} {' '.join(preview(a, 30) for a in args)}) -> "
                         f"{type(err).__name__}: {str(err)[:80]}")
    assert not leaks, "\n".join(leaks[:10])


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_wrong_argument_counts_are_arity_errors(name):
    fn = BUILTINS[name]
    too_few = fn.min_args - 1
    counts = ([too_few] if too_few >= 0 else []) + (
        [fn.max_args + 1] if fn.max_args is not None else [])
    for argc in counts:
        with pytest.raises(ArityError, match=re.escape(f"{name} takes")):
            _VM.call(fn, [1] * argc)


@pytest.mark.parametrize("text, argc", [
    ("(int? 1 2)", 2), ("(nil?)", 0), ("(string? \"a\" \"b\")", 2), ("(nth [1] 0 :a :b)", 4),
    ("(join \",\" [1] [2])", 3), ("(get {})", 1), ("(not 1 2)", 2),
])
def test_arity_errors_name_the_count_and_keep_python_out(text, argc):
    with pytest.raises(ArityError) as info:
        evaluate(text)
    assert f"got {argc}" in info.value.message and "positional" not in info.value.message


@pytest.mark.parametrize("text, expected", [
    ('(join "," nil)', '""'), ('(join nil)', '""'), ('(join ", " [1 "a" :k])', '"1, a, :k"'),
    ('(join [1 2])', '"12"'), ('(string-join "-" ["a" "b"])', '"a-b"'),
])
def test_join(text, expected):
    from tests.rtfs.conftest import show

    assert show(text) == expected
