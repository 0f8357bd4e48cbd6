"""extractive-summarizer: sentence splitting, ranking and parameters."""

from __future__ import annotations

import pytest

from delegation.errors import ProviderInputError
from delegation.providers.summarizer import (
    ExtractiveSummarizer,
    rank_sentences,
    split_sentences,
    summarize,
)


@pytest.mark.parametrize(
    "text, sentences",
    [
        ("One. Two! Three? Four", ["One.", "Two!", "Three?", "Four"]),
        ("Dr. Smith met Mr. Jones. They talked.", ["Dr. Smith met Mr. Jones.", "They talked."]),
        (
            "J. R. R. Tolkien wrote books. He was English.",
            ["J. R. R. Tolkien wrote books.", "He was English."],
        ),
        ('He said "stop." Then he left.', ['He said "stop."', "Then he left."]),
        ("Version 3.11 is out. Try it.", ["Version 3.11 is out.", "Try it."]),
        ("   ", []),
        ("no end mark", ["no end mark"]),
    ],
)
def test_split_sentences(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences


def test_the_central_sentence_ranks_first() -> None:
    sentences = [
        "Solar panels turn sunlight into electricity.",
        "Electricity from solar panels powers homes.",
        "Homes with solar panels save on electricity bills.",
        "Bananas are yellow.",
    ]
    scores = rank_sentences(sentences)
    assert scores.index(max(scores)) in (0, 1, 2)
    assert scores[3] == min(scores)
    assert sum(scores) == pytest.approx(1.0)


def test_summary_keeps_original_order_and_is_deterministic() -> None:
    text = (
        "Bananas are yellow. Solar panels turn sunlight into electricity. "
        "Electricity from solar panels powers homes. My uncle sings."
    )
    summary = summarize(text, 2)
    assert summary == [
        "Solar panels turn sunlight into electricity.",
        "Electricity from solar panels powers homes.",
    ]
    assert summarize(text, 2) == summary


def test_max_sentences_parameter_and_its_validation() -> None:
    model = ExtractiveSummarizer("s", max_sentences=1)
    text = "Cats purr. Cats sleep a lot. Dogs bark at cats."
    assert len(split_sentences(model.infer(text).text)) == 1
    assert len(split_sentences(model.infer(text, max_sentences=3).text)) == 3
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ProviderInputError, match="max_sentences"):
            model.infer(text, max_sentences=bad)


def test_long_documents_are_summarized() -> None:
    text = " ".join(f"Sentence {i} talks about topic {i % 7} and shared words." for i in range(300))
    assert len(summarize(text, 3)) == 3
