"""`sentiment-rules`: VADER's rule/lexicon sentiment model, extended by a rules file.

Rules file format (UTF-8, one rule a line):

    # comment (also after a rule)
    flaky          -2.0      # a word: replaces or adds VADER's valence for it
    rock solid      2.5      # several words: a phrase rule

A rule is a TERM followed by a VALENCE, the last whitespace-separated field: a number from
-4 to +4 (VADER's scale). Terms are matched case-insensitively against VADER's tokens, so a
term with punctuation around a word can never match and is rejected. A phrase adds its
valence once per occurrence, on top of its words' own, and counts negated (times VADER's
-0.74) after a negation such as "not" within three words. Errors name the file and line.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from vaderSentiment.vaderSentiment import (
    N_SCALAR,
    SentimentIntensityAnalyzer,
    SentiText,
    negated,
)

from delegation.errors import ConfigError
from delegation.providers.base import BaseProvider, Health, ModelResult

MAX_VALENCE = 4.0
POSITIVE_THRESHOLD = 0.05
"""VADER's usual cut-offs: compound >= 0.05 is positive, <= -0.05 negative, else neutral."""


@dataclass(frozen=True)
class SentimentRules:
    """Parsed rules: single-word valences and phrase valences (phrase = tuple of tokens)."""

    words: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    phrases: Mapping[tuple[str, ...], float] = field(default_factory=lambda: MappingProxyType({}))
    source: str = "<none>"


def load_rules(path: str | Path) -> SentimentRules:
    """Read and parse a rules file; raise `ConfigError` naming the file (and line)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text: {e.reason}", str(path)) from e
    except OSError as e:
        raise ConfigError(f"cannot read the rules file: {e.strerror or e}", str(path)) from e
    return parse_rules(text, source=str(path))


def parse_rules(text: str, *, source: str = "<string>") -> SentimentRules:
    """Parse rules text; raise `ConfigError` naming `source`, the term and the line."""
    words: dict[str, float] = {}
    phrases: dict[tuple[str, ...], float] = {}
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split("#", 1)[0].split()
        if not fields:
            continue
        term, valence = _parse_rule(fields, source, number)
        if term in seen:
            raise ConfigError(f"duplicate rule (first on line {seen[term]})", source, term, number)
        seen[term] = number
        tokens = tuple(term.split())
        if len(tokens) == 1:
            words[tokens[0]] = valence
        else:
            phrases[tokens] = valence
    return SentimentRules(MappingProxyType(words), MappingProxyType(phrases), source)


def _parse_rule(fields: list[str], source: str, line: int) -> tuple[str, float]:
    if len(fields) < 2:
        raise ConfigError("expected TERM VALENCE (e.g. 'flaky -2.0')", source, fields[0], line)
    term = " ".join(fields[:-1]).lower()
    try:
        valence = float(fields[-1])
    except ValueError:
        raise ConfigError(f"valence {fields[-1]!r} is not a number", source, term, line) from None
    if not math.isfinite(valence) or abs(valence) > MAX_VALENCE:
        raise ConfigError(f"valence {fields[-1]} is outside -4..4", source, term, line)
    for token in term.split():
        if SentiText._strip_punc_if_word(token) != token:
            raise ConfigError(
                f"token {token!r} can never match: punctuation around a word is "
                "stripped before lookup",
                source,
                term,
                line,
            )
    return term, valence


class RulesAnalyzer(SentimentIntensityAnalyzer):  # type: ignore[misc]
    """VADER with the rules' words merged into its lexicon and their phrases scored."""

    def __init__(self, rules: SentimentRules) -> None:
        super().__init__()
        self.lexicon.update(rules.words)
        self._phrases: dict[str, list[tuple[tuple[str, ...], float]]] = {}
        for tokens, valence in rules.phrases.items():
            self._phrases.setdefault(tokens[0], []).append((tokens, valence))

    def score_valence(self, sentiments: list[float], text: str) -> dict[str, float]:
        if self._phrases:
            sentiments = sentiments + self._phrase_valences(text)
        return super().score_valence(sentiments, text)  # type: ignore[no-any-return]

    def _phrase_valences(self, text: str) -> list[float]:
        tokens = [t.lower() for t in SentiText(text).words_and_emoticons]
        found = []
        for i, token in enumerate(tokens):
            for phrase, valence in self._phrases.get(token, ()):
                if tuple(tokens[i : i + len(phrase)]) == phrase:
                    before = tokens[max(0, i - 3) : i]
                    found.append(valence * N_SCALAR if negated(before) else valence)
        return found


def label_for(compound: float) -> str:
    """Return "positive", "negative" or "neutral" for a VADER compound score."""
    if compound >= POSITIVE_THRESHOLD:
        return "positive"
    if compound <= -POSITIVE_THRESHOLD:
        return "negative"
    return "neutral"


class SentimentRulesProvider(BaseProvider):
    """Local sentiment model. `infer(text)` -> text = label, value = label + scores.

    The value is `{"label", "compound", "pos", "neg", "neu"}`; VADER's lexicon is loaded on
    first use (about 10 ms), so building a registry stays cheap.
    """

    def __init__(
        self,
        id: str,
        rules: SentimentRules | None = None,
        *,
        cost_per_call: float = 0.0,
        capabilities: tuple[str, ...] = ("sentiment",),
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(id, cost_per_call=cost_per_call, capabilities=capabilities, timer=timer)
        self.rules = rules or SentimentRules()
        self._analyzer: RulesAnalyzer | None = None
        self._lock = threading.Lock()

    def _model(self) -> RulesAnalyzer:
        if self._analyzer is None:
            with self._lock:
                if self._analyzer is None:
                    self._analyzer = RulesAnalyzer(self.rules)
        return self._analyzer

    def infer(self, prompt: str, **params: Any) -> ModelResult:
        """Classify `prompt`; takes no parameters."""
        text = self._check(prompt, params)
        started = self._timer()
        scores = self._model().polarity_scores(text)
        label = label_for(scores["compound"])
        return self._result(label, {"label": label, **scores}, started)

    def health(self) -> Health:
        """Always healthy: the lexicon ships with the package and the rules parsed at build."""
        return Health(True, f"VADER lexicon + rules from {self.rules.source}")
