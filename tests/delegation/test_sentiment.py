"""sentiment-rules: the rules file format, its errors, and that rules change outcomes."""

from __future__ import annotations

from pathlib import Path

import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from delegation.errors import ConfigError
from delegation.providers.sentiment import (
    SentimentRulesProvider,
    label_for,
    load_rules,
    parse_rules,
)

EXAMPLE_RULES = Path(__file__).resolve().parents[2] / "examples" / "models" / "sentiment.rules"


def test_rules_file_format() -> None:
    rules = parse_rules(
        "# header\n\nflaky  -2.0   # trailing comment\nRock  Solid\t2.5\n", source="r.rules"
    )
    assert dict(rules.words) == {"flaky": -2.0}
    assert dict(rules.phrases) == {("rock", "solid"): 2.5}
    assert rules.source == "r.rules"


@pytest.mark.parametrize(
    "text, line, key, message",
    [
        ("ok 1\nflaky\n", 2, "flaky", "expected TERM VALENCE"),
        ("flaky bad\n", 1, "flaky", "valence 'bad' is not a number"),
        ("\n\nflaky -4.5\n", 3, "flaky", "outside -4..4"),
        ("flaky nan\n", 1, "flaky", "outside -4..4"),
        ("flaky -2\n# c\nFLAKY -1\n", 3, "flaky", "duplicate rule (first on line 1)"),
        ("great! 2\n", 1, "great!", "can never match"),
    ],
)
def test_rules_errors_name_file_line_and_term(text: str, line: int, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_rules(text, source="models/s.rules")
    error = info.value
    assert (error.file, error.line, error.key) == ("models/s.rules", line, key)
    assert message in error.message
    assert str(error).startswith(f"models/s.rules:{line}: {key}: ")


def test_missing_rules_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the rules file"):
        load_rules(tmp_path / "none.rules")


def test_the_shipped_rules_file_parses_and_changes_outcomes() -> None:
    rules = load_rules(EXAMPLE_RULES)
    assert rules.words["flaky"] == -2.0 and rules.phrases[("rock", "solid")] == 2.5
    plain = SentimentIntensityAnalyzer()
    model = SentimentRulesProvider("s", rules)
    for text, label in [
        ("The nightly build is flaky", "negative"),
        ("We had an outage", "negative"),
        ("The new UI feels snappy", "positive"),
    ]:
        assert label_for(plain.polarity_scores(text)["compound"]) == "neutral"
        assert model.infer(text).text == label


def test_word_rules_replace_vader_ratings() -> None:
    model = SentimentRulesProvider("s", parse_rules("love -3.0\n"))
    assert model.infer("I love this").text == "negative"


def test_phrase_rules_add_once_per_occurrence_and_respect_negation() -> None:
    model = SentimentRulesProvider("s", parse_rules("dead on arrival -3.0\n"))
    plain = SentimentRulesProvider("p")
    text = "The release was dead on arrival"
    assert model.infer(text).value["compound"] < plain.infer(text).value["compound"]
    twice = model.infer("dead on arrival and dead on arrival").value["compound"]
    once = model.infer("dead on arrival and fine").value["compound"]
    assert twice < once
    negated = model.infer("It was not dead on arrival").value["compound"]
    assert negated > model.infer("It was dead on arrival").value["compound"]


def test_labels_use_vaders_thresholds() -> None:
    assert [label_for(x) for x in (0.05, 0.049, 0.0, -0.049, -0.05)] == [
        "positive",
        "neutral",
        "neutral",
        "neutral",
        "negative",
    ]
