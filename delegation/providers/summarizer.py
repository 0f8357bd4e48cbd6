"""`extractive-summarizer`: a local TextRank summarizer, no downloads.

The text is split into sentences; each pair of sentences is linked by the overlap of their
content words (stop words removed), normalised by their lengths as in TextRank (Mihalcea and
Tarau, 2004); PageRank over that graph ranks the sentences, and the top `max_sentences` are
returned in their original order. Ties go to the earlier sentence, so output is deterministic.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from typing import Any

from delegation.errors import ProviderInputError
from delegation.providers.base import BaseProvider, Health, ModelResult

DAMPING = 0.85
MAX_ITERATIONS = 100
TOLERANCE = 1e-9

_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e fig no vol approx inc ltd co corp".split()
)
_STOP_WORDS = frozenset(
    """
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers herself him himself his how i if in into is it its itself
just me more most my myself no nor not now of off on once only or other our ours ourselves out
over own same she should so some such than that the their theirs them themselves then there
these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves also may might must
shall us its it's i'm we're they're
""".split()
)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def split_sentences(text: str) -> list[str]:
    """Split text into sentences at . ! ? followed by space, not after common abbreviations."""
    sentences: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        candidate = text[start : m.start()].strip()
        last_word = candidate.rsplit(None, 1)[-1].rstrip(".").lower() if candidate else ""
        if last_word in _ABBREVIATIONS or re.fullmatch(r"[a-z]", last_word):
            continue  # "Dr. Smith", "J. Doe": not a sentence end
        sentences.append(text[start : m.end()].strip())
        start = m.end()
    rest = text[start:].strip()
    if rest:
        sentences.append(rest)
    return [s for s in sentences if s]


def content_words(sentence: str) -> list[str]:
    """Lowercased words of a sentence without stop words."""
    return [w for w in _WORD.findall(sentence.lower()) if w not in _STOP_WORDS]


def _similarity(a: set[str], b: set[str], len_a: int, len_b: int) -> float:
    overlap = len(a & b)
    if overlap == 0 or len_a < 1 or len_b < 1:
        return 0.0
    denominator = math.log(len_a + 1) + math.log(len_b + 1)
    return overlap / denominator


def rank_sentences(sentences: list[str]) -> list[float]:
    """TextRank score of each sentence (PageRank over the word-overlap graph)."""
    words = [content_words(s) for s in sentences]
    sets = [set(w) for w in words]
    n = len(sentences)
    weights = [
        [
            0.0 if i == j else _similarity(sets[i], sets[j], len(words[i]), len(words[j]))
            for j in range(n)
        ]
        for i in range(n)
    ]
    out_sums = [sum(row) for row in weights]
    # incoming[i]: (j, share of j's score that flows to i), only for linked pairs.
    incoming = [
        [(j, weights[j][i] / out_sums[j]) for j in range(n) if weights[j][i] > 0] for i in range(n)
    ]
    scores = [1.0 / n] * n if n else []
    dangling = [j for j in range(n) if out_sums[j] == 0]  # no links: spread evenly
    for _ in range(MAX_ITERATIONS):
        base = (1 - DAMPING) / n + DAMPING * sum(scores[j] for j in dangling) / n
        new = [base + DAMPING * sum(w * scores[j] for j, w in incoming[i]) for i in range(n)]
        done = max((abs(a - b) for a, b in zip(new, scores)), default=0.0) < TOLERANCE
        scores = new
        if done:
            break
    return scores


def summarize(text: str, max_sentences: int = 3) -> list[str]:
    """Return the `max_sentences` highest-ranked sentences of `text`, in original order."""
    sentences = split_sentences(text)
    if len(sentences) <= max_sentences:
        return sentences
    scores = rank_sentences(sentences)
    best = sorted(range(len(sentences)), key=lambda i: (-scores[i], i))[:max_sentences]
    return [sentences[i] for i in sorted(best)]


class ExtractiveSummarizer(BaseProvider):
    """Local summarizer. `infer(text, max_sentences=k)` -> text = value = the summary."""

    accepted_params = ("max_sentences",)

    def __init__(
        self,
        id: str,
        *,
        max_sentences: int = 3,
        cost_per_call: float = 0.0,
        capabilities: tuple[str, ...] = ("summarize",),
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(id, cost_per_call=cost_per_call, capabilities=capabilities, timer=timer)
        self.max_sentences = max_sentences

    def infer(self, prompt: str, **params: Any) -> ModelResult:
        """Summarize `prompt` into at most `max_sentences` of its own sentences."""
        text = self._check(prompt, params)
        k = params.get("max_sentences", self.max_sentences)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ProviderInputError(self.id, f"max_sentences must be an integer >= 1, not {k!r}")
        started = self._timer()
        summary = " ".join(summarize(text, k))
        return self._result(summary, summary, started)

    def health(self) -> Health:
        """Always healthy: pure Python, nothing to load."""
        return Health(True, "built-in TextRank summarizer")
