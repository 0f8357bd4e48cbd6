"""Static routes: exact names, globs compiled once, and the specificity order."""

from __future__ import annotations

import fnmatch
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from delegation.routes import PatternSet, PatternTable, Route, RouteTable, compile_glob, is_glob
from delegation.targets import LOCAL_PURE, LocalModel, RemoteModel


def table(*patterns: str) -> PatternTable[str]:
    return PatternTable((p, p) for p in patterns)


def test_exact_name_wins_over_any_glob() -> None:
    routes = table("sentiment", "sent*", "*")
    assert routes.match("sentiment") == "sentiment"
    assert routes.exact == {"sentiment": "sentiment"}
    assert [spec.pattern for spec, _ in routes.globs] == ["sent*", "*"]


@pytest.mark.parametrize(
    "patterns, name, winner",
    [
        (["ai-*", "ai-gen-*"], "ai-gen-text", "ai-gen-*"),  # more literal characters
        (["ai-*", "ai-gen-*"], "ai-chat", "ai-*"),
        (["*-code", "gen*"], "generate-code", "*-code"),  # 5 literals beat 3
        (["a*c", "a?c"], "abc", "a?c"),  # fewer stars
        (["a?c", "a[b]c"], "abc", "a[b]c"),  # fewer ?, then fewer sets
        (["gen*x", "*genx"], "genx", "gen*x"),  # longer literal prefix
        (["*b*", "a*"], "ab", "a*"),  # 1 literal each: 1 star beats 2
        (["x*", "*x"], "xx", "x*"),  # prefix 1 beats 0
        (["[ab]*", "[!c]*"], "a", "[!c]*"),  # ties fall to pattern text
        (["ai-*"], "other", None),
    ],
)
def test_most_specific_glob_wins(patterns: list[str], name: str, winner: str | None) -> None:
    assert table(*patterns).match(name) == winner
    assert table(*reversed(patterns)).match(name) == winner


@given(
    st.permutations(["a*", "ab*", "a?c*", "*c", "ab?", "[a-c]b*", "*", "a[!x]c", "?b*"]),
    st.text(alphabet="abcx", max_size=5),
)
def test_order_of_definition_never_matters(patterns: list[str], name: str) -> None:
    assert table(*patterns).match(name) == table(*sorted(patterns)).match(name)


@given(
    st.text(alphabet="ab*?[]!-", min_size=1, max_size=8), st.text(alphabet="ab]-!*?[", max_size=6)
)
def test_glob_semantics_agree_with_fnmatchcase(pattern: str, name: str) -> None:
    try:
        spec = compile_glob(pattern)
    except ValueError:
        return  # unclosed or reversed sets are config errors here; fnmatch guesses instead
    assert (re.fullmatch(spec.regex, name, re.DOTALL) is not None) == fnmatch.fnmatchcase(
        name, pattern
    )


@pytest.mark.parametrize(
    "pattern, message",
    [
        ("ai-[", "unclosed '['"),
        ("x[!", "unclosed '['"),
        ("[z-a]", "bad pattern"),
        ("", "must not be empty"),
    ],
)
def test_bad_patterns_are_value_errors(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        compile_glob(pattern)


def test_question_mark_in_a_name_is_written_as_a_set() -> None:
    assert is_glob("valid?") and table("valid?").match("valids") == "valid?"
    routes = table("valid[?]")
    assert routes.match("valid?") == "valid[?]"
    assert routes.match("valids") is None


def test_memo_eviction_keeps_answers_right() -> None:
    routes = table("n-*", "n-1*")
    for i in range(10_000):
        expected = "n-1*" if str(i).startswith("1") else "n-*"
        assert routes.match(f"n-{i}") == expected
    assert routes.match("m-1") is None


def test_route_table_keeps_routes_and_their_fallbacks() -> None:
    summarize = Route("summarize", RemoteModel("openai"), LocalModel("summarizer"), 13)
    ai = Route("ai-*", RemoteModel("openai"), None, 16)
    routes = RouteTable([summarize, ai])
    assert routes.match("summarize") is summarize
    assert routes.match("ai-chat") is ai and ai.is_glob and not summarize.is_glob
    assert routes.match("+") is None
    assert routes.routes == (summarize, ai) and len(routes) == 2
    assert RouteTable().match("x") is None
    assert Route("x", LOCAL_PURE).fallback is None


def test_pattern_set_reports_the_matching_pattern() -> None:
    sensitive = PatternSet(["generate-code", "private-*", "private-keys-*"])
    assert "generate-code" in sensitive and "private-notes" in sensitive
    assert sensitive.matching("private-keys-rotate") == "private-keys-*"
    assert "generate" not in sensitive and 42 not in sensitive
    assert len(sensitive) == 3
