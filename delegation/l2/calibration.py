"""Calibrating the semantic threshold of one namespace to a target false-hit rate.

Labelled pairs (`{"a", "b", "same"}`) are scored the way the cache would see them (store `a`,
look up `b`): an exact hit after normalisation, a guard refusal, or a cosine. A negative
pair (`same: false`) that would be served is a false hit.

The threshold is chosen conformally: with `n` negatives, letting the `m` highest-scoring
negatives through and stopping just above the next one makes the expected false-hit rate on
new traffic of the same kind `(m + 1) / (n + 1)` (the rank of a fresh negative among `n + 1`
exchangeable ones). `m` is the largest count that keeps this at or below the target. That is
why a target needs enough negatives: `n >= 1 / target - 1` (99 for 1%), else the
calibration is refused (`CalibrationError`). The in-sample false hits are stored with their
one-sided Clopper-Pearson upper bound.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from delegation.l2.config import DEFAULT_MIN_THRESHOLD
from delegation.l2.embedder import Embedder, cosine
from delegation.l2.errors import CalibrationError
from delegation.l2.guard import GUARD_VERSION, features, guard
from delegation.l2.pairs import Pair

DEFAULT_CONFIDENCE = 0.95
CALIBRATION_FORMAT = 1
THRESHOLD_MARGIN = 1e-6


@dataclass(frozen=True)
class Calibration:
    """A namespace's threshold and the evidence for it.

    Attributes:
        model_id, weights_sha256: the embedder it was measured with (it holds for no other).
        guard_version: the guard rules it was measured with.
        target_rate: the false-hit rate it was chosen for.
        threshold: the lowest cosine served as a semantic hit; None when no threshold meets
            the target (semantic hits off, exact hits only).
        negatives, false_hits: negative pairs and how many of them would be served.
        positives, true_hits: positive pairs and how many of them would be served.
        upper_bound: one-sided upper confidence bound of false_hits / negatives.
        confidence: the bound's confidence level.
        source: where the pairs came from.
        created_at: wall-clock epoch seconds.
    """

    model_id: str
    weights_sha256: str
    guard_version: int
    target_rate: float
    threshold: float | None
    negatives: int
    false_hits: int
    positives: int
    true_hits: int
    upper_bound: float
    confidence: float
    source: str
    created_at: float

    @property
    def false_hit_rate(self) -> float:
        """Observed false hits / negatives."""
        return self.false_hits / self.negatives if self.negatives else 0.0

    @property
    def recall(self) -> float:
        """Observed true hits / positives (0 without positives)."""
        return self.true_hits / self.positives if self.positives else 0.0

    def holds_for(self, embedder: Embedder) -> bool:
        """True if it was measured with this embedder's model and weights and this guard."""
        return (self.model_id == embedder.model_id
                and self.weights_sha256 == embedder.weights_sha256
                and self.guard_version == GUARD_VERSION)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (`from_dict` reads it back)."""
        return {"format": CALIBRATION_FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Any) -> Calibration:
        """Inverse of `to_dict`; raises ValueError or TypeError if malformed."""
        if not isinstance(data, dict) or data.get("format") != CALIBRATION_FORMAT:
            raise ValueError(f"not a calibration of format {CALIBRATION_FORMAT}")
        fields = {k: v for k, v in data.items() if k != "format"}
        cal = cls(**fields)
        _check_types(cal)
        return cal

    def summary(self) -> str:
        """One line: threshold, observed false hits with their bound, recall."""
        threshold = f"{self.threshold:.4f}" if self.threshold is not None else "none (exact only)"
        return (f"threshold {threshold}; false hits {self.false_hits}/{self.negatives} "
                f"({self.false_hit_rate:.2%}, {self.confidence:.0%} upper bound "
                f"{self.upper_bound:.2%}) for a {self.target_rate:.2%} target; recall "
                f"{self.true_hits}/{self.positives} ({self.recall:.1%})")


def _check_types(cal: Calibration) -> None:
    if not (isinstance(cal.model_id, str) and isinstance(cal.weights_sha256, str)
            and isinstance(cal.source, str)):
        raise TypeError("model_id, weights_sha256 and source must be strings")
    for name in ("guard_version", "negatives", "false_hits", "positives", "true_hits"):
        value = getattr(cal, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise TypeError(f"{name} must be a count")
    if cal.threshold is not None and not isinstance(cal.threshold, (int, float)):
        raise TypeError("threshold must be a number or null")
    for name in ("target_rate", "upper_bound", "confidence", "created_at"):
        if not isinstance(getattr(cal, name), (int, float)):
            raise TypeError(f"{name} must be a number")


# --- scoring -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PairScore:
    """How the cache sees one labelled pair: exact, refused by the guard, or a cosine."""

    same: bool
    exact: bool
    refusal: str | None
    cosine: float | None

    def served(self, threshold: float | None) -> bool:
        """Would a cache with this threshold answer `b` from `a`?"""
        if self.exact:
            return True
        return (threshold is not None and self.refusal is None and self.cosine is not None
                and self.cosine >= threshold)


def score_pairs(pairs: Sequence[Pair], embedder: Embedder, *, batch: int = 64) -> list[PairScore]:
    """Score every pair as the cache would (the same normalisation, guard and cosine)."""
    scores: list[PairScore | None] = []
    pending: list[int] = []
    for i, pair in enumerate(pairs):
        fa, fb = features(pair.a), features(pair.b)
        if fa.normalized == fb.normalized:
            scores.append(PairScore(pair.same, True, None, None))
            continue
        refusal = guard(fa, fb)
        scores.append(PairScore(pair.same, False, refusal, None) if refusal else None)
        if refusal is None:
            pending.append(i)
    for start in range(0, len(pending), batch):
        chunk = pending[start:start + batch]
        va = embedder.embed([pairs[i].a for i in chunk])
        vb = embedder.embed([pairs[i].b for i in chunk])
        for row, i in enumerate(chunk):
            scores[i] = PairScore(pairs[i].same, False, None, cosine(va[row], vb[row]))
    return [s for s in scores if s is not None]


# --- choosing the threshold -------------------------------------------------------------


def required_negatives(target_rate: float) -> int:
    """The fewest negatives for which some threshold meets `target_rate` in expectation."""
    return max(1, math.ceil(1.0 / target_rate - 1.0 - 1e-9))


def calibrate(scores: Sequence[PairScore], target_rate: float, *, namespace: str,
              embedder: Embedder, source: str,
              min_threshold: float = DEFAULT_MIN_THRESHOLD,
              confidence: float = DEFAULT_CONFIDENCE,
              clock: Callable[[], float] = time.time) -> Calibration:
    """Choose the lowest threshold whose expected false-hit rate is at most `target_rate`.

    Raises:
        CalibrationError: too few negatives for the target, or an invalid target.
    """
    if not 0.0 < target_rate < 1.0:
        raise CalibrationError(namespace, f"target rate must be in (0, 1), not {target_rate}")
    negatives = [s for s in scores if not s.same]
    n = len(negatives)
    if n < required_negatives(target_rate):
        raise CalibrationError(
            namespace, f"{n} negative pairs (same: false) are too few for a "
            f"{target_rate:.2%} target: at least {required_negatives(target_rate)} are needed")
    threshold = _threshold(negatives, target_rate, min_threshold)
    false_hits = sum(s.served(threshold) for s in negatives)
    positives = [s for s in scores if s.same]
    return Calibration(
        model_id=embedder.model_id, weights_sha256=embedder.weights_sha256,
        guard_version=GUARD_VERSION, target_rate=target_rate, threshold=threshold,
        negatives=n, false_hits=false_hits, positives=len(positives),
        true_hits=sum(s.served(threshold) for s in positives),
        upper_bound=binomial_upper(false_hits, n, confidence), confidence=confidence,
        source=source, created_at=clock())


def _threshold(negatives: Sequence[PairScore], target_rate: float,
               min_threshold: float) -> float | None:
    n = len(negatives)
    allowed = math.floor(target_rate * (n + 1) + 1e-9) - 1  # m with (m+1)/(n+1) <= target
    allowed -= sum(s.exact for s in negatives)  # served at any threshold
    if allowed < 0:
        return None
    cosines = sorted((s.cosine for s in negatives
                      if not s.exact and s.refusal is None and s.cosine is not None),
                     reverse=True)
    if allowed >= len(cosines):
        return min_threshold
    # Just above the first negative that must miss; the margin is far above float32 rounding,
    # so a cosine summed in another order by an index cannot cross it.
    return max(min_threshold, cosines[allowed] + THRESHOLD_MARGIN)


# --- binomial confidence bounds (Clopper-Pearson, via the regularised incomplete beta) -----


def binomial_upper(k: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> float:
    """One-sided upper bound on a rate after `k` events in `n` trials."""
    if n <= 0:
        return 1.0
    if k >= n:
        return 1.0
    alpha = 1.0 - confidence
    # The p at which P(X <= k) = alpha, i.e. I_{1-p}(n-k, k+1) = alpha.
    return _solve(lambda p: _betainc(n - k, k + 1, 1.0 - p) - alpha, decreasing=True)


def binomial_lower(k: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> float:
    """One-sided lower bound on a rate after `k` events in `n` trials."""
    if n <= 0 or k <= 0:
        return 0.0
    alpha = 1.0 - confidence
    # The p at which P(X >= k) = alpha, i.e. I_p(k, n-k+1) = alpha.
    return _solve(lambda p: _betainc(k, n - k + 1, p) - alpha, decreasing=False)


def _solve(f: Callable[[float], float], *, decreasing: bool) -> float:
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        value = f(mid)
        if (value > 0) == decreasing:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """Lentz's continued fraction for the incomplete beta function."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h
