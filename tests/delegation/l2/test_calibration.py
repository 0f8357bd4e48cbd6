"""Calibration: the conformal threshold, its bounds, too few negatives, the shipped default."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from delegation.l2.book import CalibrationBook, shipped_defaults
from delegation.l2.calibration import (
    THRESHOLD_MARGIN,
    Calibration,
    PairScore,
    binomial_lower,
    binomial_upper,
    calibrate,
    required_negatives,
    score_pairs,
)
from delegation.l2.embedder import Embedder, HashingEmbedder
from delegation.l2.errors import ALL_L2_ERRORS, CacheStateError, CalibrationError
from delegation.l2.pairs import Pair

ROOT = Path(__file__).resolve().parents[3]


def _binomial_cdf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


@pytest.mark.parametrize(("k", "n"), [(0, 10), (0, 300), (1, 20), (2, 300), (5, 50),
                                      (10, 10), (3, 1000)])
def test_bounds_agree_with_the_binomial_distribution(k: int, n: int) -> None:
    upper = binomial_upper(k, n)
    if k < n:  # at the upper bound, seeing k or fewer has probability 5%
        assert _binomial_cdf(k, n, upper) == pytest.approx(0.05, abs=1e-6)
    else:
        assert upper == 1.0
    lower = binomial_lower(k, n)
    if k > 0:  # at the lower bound, seeing k or more has probability 5%
        assert 1 - _binomial_cdf(k - 1, n, lower) == pytest.approx(0.05, abs=1e-6)
    else:
        assert lower == 0.0
    assert lower <= k / n <= upper


def test_rule_of_three() -> None:
    assert binomial_upper(0, 300) == pytest.approx(1 - 0.05 ** (1 / 300), rel=1e-6)
    assert binomial_upper(0, 0) == 1.0


def test_required_negatives() -> None:
    assert required_negatives(0.01) == 99
    assert required_negatives(0.05) == 19
    assert required_negatives(0.001) == 999


def _scores(negatives: list[float], positives: list[float], *, exact_negatives: int = 0,
            refused_negatives: int = 0) -> list[PairScore]:
    out = [PairScore(False, False, None, c) for c in negatives]
    out += [PairScore(False, True, None, None)] * exact_negatives
    out += [PairScore(False, False, "numbers differ", 0.99)] * refused_negatives
    out += [PairScore(True, False, None, c) for c in positives]
    return out


def _calibrate(scores: list[PairScore], target: float = 0.01) -> Calibration:
    return calibrate(scores, target, namespace="ns", embedder=HashingEmbedder(256),
                     source="synthetic", clock=lambda: 5.0)


def test_threshold_lets_through_the_conformal_count() -> None:
    # 299 negatives at a 1% target: (m + 1) / 300 <= 0.01 allows m = 2 negatives through.
    negatives = [0.5 + i / 1000 for i in range(299)]  # highest: 0.798, 0.797, 0.796
    positives = [0.9, 0.797, 0.7965, 0.6]
    cal = _calibrate(_scores(negatives, positives))
    assert cal.threshold == pytest.approx(0.796 + THRESHOLD_MARGIN)
    assert (cal.false_hits, cal.negatives) == (2, 299)
    assert (cal.true_hits, cal.positives) == (3, 4)
    assert cal.upper_bound == pytest.approx(binomial_upper(2, 299))
    assert cal.created_at == 5.0 and cal.source == "synthetic"


def test_refused_and_exact_negatives() -> None:
    # Guard-refused negatives never hit; exact negatives always do and use up the allowance.
    cal = _calibrate(_scores([0.7] * 100, [0.8], refused_negatives=199))
    assert cal.negatives == 299 and cal.threshold == pytest.approx(0.7 + THRESHOLD_MARGIN)
    assert cal.false_hits == 0
    off = _calibrate(_scores([0.7] * 296, [0.8], exact_negatives=3))
    assert off.threshold is None and off.false_hits == 3 and off.true_hits == 0


def test_threshold_never_below_the_floor() -> None:
    cal = _calibrate(_scores([0.1] * 150, [0.3, 0.6]))
    assert cal.threshold == 0.5 and cal.true_hits == 1


def test_too_few_negatives_is_refused() -> None:
    with pytest.raises(CalibrationError, match="40 negative pairs .* at least 99") as info:
        _calibrate(_scores([0.5] * 40, [0.9] * 40))
    assert isinstance(info.value, ValueError) and info.value.namespace == "ns"
    assert _calibrate(_scores([0.5] * 40, [0.9] * 40), target=0.05).negatives == 40
    with pytest.raises(CalibrationError, match="target"):
        _calibrate(_scores([0.5] * 400, []), target=0.0)


def test_round_trip_and_summary() -> None:
    cal = _calibrate(_scores([0.5 + i / 1000 for i in range(299)], [0.9]))
    assert Calibration.from_dict(cal.to_dict()) == cal
    assert "false hits 2/299" in cal.summary() and "upper bound" in cal.summary()
    with pytest.raises((TypeError, ValueError)):
        Calibration.from_dict({**cal.to_dict(), "negatives": "many"})
    with pytest.raises(ValueError):
        Calibration.from_dict({**cal.to_dict(), "format": 99})


def test_scoring_matches_the_cache_path() -> None:
    embedder = HashingEmbedder(256)
    pairs = [Pair("Track order 48213", "Track order 48231", False),
             Pair("How do I reset my password?", "how do i reset my password", True),
             Pair("How do I reset my password?", "How can I reset my password?", True)]
    exact_number, exact, semantic = score_pairs(pairs, embedder)
    assert exact_number.refusal is not None and exact_number.refusal.startswith("numbers")
    assert exact.exact and not semantic.exact and semantic.refusal is None
    a, b = embedder.embed([pairs[2].a, pairs[2].b])
    assert semantic.cosine == pytest.approx(float(a.astype(float) @ b))


def test_shipped_default_is_what_the_data_gives() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "build-l2-defaults"),
                             "--check"], check=False, capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shipped_default_for_minilm(minilm: Embedder) -> None:
    default = shipped_defaults()[minilm.model_id]
    assert default.holds_for(minilm)
    assert default.negatives == 300 and default.positives == 300
    assert default.false_hits / default.negatives <= 0.01
    assert default.threshold is not None and 0.8 < default.threshold < 1.0
    assert "Mabon ap Gwyn" in default.source and "CC BY 4.0" in default.source


def test_book_rejects_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "book.json"
    path.write_text("{not json")
    with pytest.raises(CacheStateError, match="cannot read"):
        CalibrationBook(path)
    path.write_text('{"kind": "something else"}')
    with pytest.raises(CacheStateError, match="not a rtfs-l2-calibrations"):
        CalibrationBook(path)
    path.write_text('{"format": 1, "kind": "rtfs-l2-calibrations", "namespaces": '
                    '{"ns": {"calibration": null, "shadow": {"checks": 1, "false_hits": 5, '
                    '"off_reason": null}}}}')
    with pytest.raises(CacheStateError, match="namespace 'ns'"):
        CalibrationBook(path)


def test_book_round_trips(tmp_path: Path) -> None:
    embedder = HashingEmbedder(256)
    cal = _calibrate(_scores([0.5 + i / 1000 for i in range(299)], [0.9]))
    book = CalibrationBook.in_state_dir(tmp_path / "state", defaults={})
    book.set("ns", cal)
    book.record_shadow("ns", True, 0.01)
    book.save()
    again = CalibrationBook.in_state_dir(tmp_path / "state", defaults={})
    assert again.get("ns") == cal and again.shadow("ns").checks == 1
    assert again.namespaces() == ["ns"]
    assert again.effective("ns", embedder).origin == "namespace"


@pytest.mark.parametrize("error_type", ALL_L2_ERRORS)
def test_every_l2_error_pickles(error_type: type[Exception]) -> None:
    import inspect

    params = [p for p in inspect.signature(error_type.__init__).parameters if p != "self"]
    args = {"line": 3}
    error = error_type(*[args.get(p, f"<{p}>") for p in params])
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is error_type and str(clone) == str(error) and clone.args == error.args
