"""A program that doubles a string or a collection in a loop stops with an RTFS error, long
before it takes the machine's memory (a plan step from HTTP could otherwise kill its node)."""

from __future__ import annotations

import sys

import pytest

from rtfs.errors import RtfsError
from rtfs.stdlib.seqs import MAX_ITEMS
from rtfs.stdlib.strings import MAX_STRING_CHARS
from tests.rtfs.conftest import evaluate
from tests.rtfs.test_memory import peak_of

BOMBS = {
    "str": '(reduce (fn [s _] (str s s)) "x" (range 64))',
    "join": '(reduce (fn [s _] (join [s s])) "x" (range 64))',
    "pr-str": '(reduce (fn [s _] (pr-str s s)) "x" (range 64))',
    "concat": "(reduce (fn [v _] (concat v v)) [1] (range 64))",
    "into": "(reduce (fn [v _] (into v v)) [1] (range 64))",
    "conj": "(reduce (fn [v _] (apply conj v v)) [1] (range 64))",
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_a_doubling_loop_stops_with_an_rtfs_error_naming_the_limit(name: str) -> None:
    with pytest.raises(RtfsError, match=f"{name} would build a .* \\(at most "
                                        f"({MAX_STRING_CHARS}|{MAX_ITEMS})\\)"):
        evaluate(BOMBS[name])


def test_values_below_the_limits_are_built() -> None:
    assert evaluate('(count (str "ab" "cd"))') == 4
    assert evaluate("(count (concat [1 2] [3]))") == 3
    assert evaluate("(into [1] [2 3])") == (1, 2, 3)


def test_a_string_bomb_peaks_far_below_the_machines_memory() -> None:
    report = peak_of([sys.executable, "-m", "rtfs", "eval", "-e", BOMBS["str"]])
    assert report["status"] == 1 and "str would build a string" in report["stderr"]
    assert report["peak_kib"] < 1024 * 1024, report["peak_kib"]
