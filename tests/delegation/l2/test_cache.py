"""SemanticCache: the key rules, tiers, guard, namespaces, sensitivity, shadow checks,
model changes, TTL, size bound and invalidation."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from delegation.l2.book import CalibrationBook
from delegation.l2.cache import SemanticCache
from delegation.l2.calibration import Calibration
from delegation.l2.config import L2Config
from delegation.l2.embedder import Embedder, HashingEmbedder
from delegation.l2.guard import GUARD_VERSION
from delegation.l2.keys import L2Call
from delegation.l2.store import LocalL2Store
from delegation.l2.testing import FakeClock
from rtfs.values import Keyword, Map

Q = "How do I reset the password of my account?"
PARAPHRASE = "How can I reset the password for my account?"


def calibration_for(embedder: Embedder, threshold: float | None = 0.6,
                    target: float = 0.01) -> Calibration:
    return Calibration(embedder.model_id, embedder.weights_sha256, GUARD_VERSION, target,
                       threshold, 300, 2, 300, 120, 0.02, 0.95, "test pairs", 0.0)


def make_cache(embedder: Embedder | None = None, *, threshold: float | None = 0.6,
               book: CalibrationBook | None = None, clock: FakeClock | None = None,
               store: LocalL2Store | None = None, **config: object) -> SemanticCache:
    embedder = embedder or HashingEmbedder(256)
    if book is None:
        book = CalibrationBook(defaults={embedder.model_id: calibration_for(embedder,
                                                                            threshold)})
    settings = replace(L2Config(model="hashing-ngram-v1-d256", shadow_rate=0.0), **config)
    return SemanticCache(settings, embedder, book=book, store=store,
                         timer=clock or FakeClock(), rng=random.Random(7))


def call(text: object = Q, *, ns: str = "default", fn: str = "ask", target: str = "remote/m1",
         policy: str = "1", extra: tuple[object, ...] = (), sensitive: bool = False) -> L2Call:
    return L2Call(ns, fn, target, policy, (text, *extra), sensitive)


def test_exact_hit_after_normalisation() -> None:
    cache = make_cache()
    cache.put(call(), "answer")
    found = cache.lookup(call("  how do I reset the PASSWORD of my account  "))
    assert (found.hit, found.tier, found.value) == (True, "exact", "answer")
    assert "exact" in found.describe()


def test_semantic_hit_reports_similarity_and_threshold() -> None:
    embedder = HashingEmbedder(256)
    cache = make_cache(embedder)
    cache.put(call(), "answer")
    found = cache.lookup(call(PARAPHRASE))
    expected = float(embedder.embed([Q])[0].astype(float) @ embedder.embed([PARAPHRASE])[0])
    assert (found.hit, found.tier, found.value, found.shadow) == (True, "semantic", "answer",
                                                                   False)
    assert found.similarity == pytest.approx(expected, abs=1e-6)
    assert found.threshold == 0.6
    assert f"cosine {expected:.3f} >= 0.600" in found.reason
    assert cache.stats().semantic_hits == 1


def test_below_threshold_is_a_miss_that_says_how_close() -> None:
    cache = make_cache(threshold=0.99)
    cache.put(call(), "answer")
    found = cache.lookup(call(PARAPHRASE))
    assert not found.hit and found.value is None
    assert found.similarity is not None and found.similarity < 0.99
    assert "below threshold" in found.reason


def test_guard_refuses_a_near_identical_input_with_another_number() -> None:
    cache = make_cache(threshold=0.5)
    cache.put(call("Track the parcel of order 48213 please"), "order 48213 is in Leeds")
    found = cache.lookup(call("Track the parcel of order 48231 please"))
    assert not found.hit
    assert found.similarity is not None and found.similarity > 0.5
    assert "guard: numbers differ" in found.reason
    assert cache.stats().guard_refusals == 1


def test_guard_refused_candidate_does_not_hide_a_good_one() -> None:
    cache = make_cache(threshold=0.5)
    cache.put(call("Do not reset the password of my account"), "no")
    cache.put(call(Q), "yes")
    found = cache.lookup(call("Please reset the password of my account"))
    assert found.hit and found.value == "yes"


@pytest.mark.parametrize("changed", [
    {"ns": "tenant-b"}, {"fn": "other-function"}, {"target": "remote/m2"}, {"policy": "2"},
    {"extra": ("fr",)},
])
def test_every_key_part_separates_entries(changed: dict[str, object]) -> None:
    cache = make_cache()
    cache.put(call(), "answer")
    assert cache.lookup(call()).hit
    found = cache.lookup(call(**changed))  # type: ignore[arg-type]
    assert not found.hit, changed


def test_structured_arguments_must_match_exactly() -> None:
    cache = make_cache()
    params = Map({Keyword("max-tokens"): 100, Keyword("lang"): Keyword("en")})
    cache.put(call(extra=(params, 3, "fr")), "answer")
    assert cache.lookup(call(PARAPHRASE, extra=(params, 3, "fr"))).hit
    other = Map({Keyword("max-tokens"): 101, Keyword("lang"): Keyword("en")})
    assert not cache.lookup(call(PARAPHRASE, extra=(other, 3, "fr"))).hit
    assert not cache.lookup(call(PARAPHRASE, extra=(params, 3.0, "fr"))).hit
    assert not cache.lookup(call(PARAPHRASE, extra=(params, 3, "de"))).hit


def test_namespaces_are_isolated_even_for_identical_calls() -> None:
    cache = make_cache()
    cache.put(call(ns="tenant-a"), "a's answer")
    assert cache.lookup(call(ns="tenant-a")).value == "a's answer"
    assert not cache.lookup(call(ns="tenant-b")).hit
    assert not cache.lookup(call(PARAPHRASE, ns="tenant-b")).hit
    cache.put(call(ns="tenant-b"), "b's answer")
    assert cache.lookup(call(PARAPHRASE, ns="tenant-a")).value == "a's answer"
    assert cache.lookup(call(PARAPHRASE, ns="tenant-b")).value == "b's answer"


def test_several_free_texts_get_exact_hits_only() -> None:
    cache = make_cache(threshold=0.1)
    cache.put(call(extra=("and also tell me the time",)), "answer")
    assert cache.lookup(call(extra=("and also tell me the time",))).tier == "exact"
    found = cache.lookup(call(PARAPHRASE, extra=("and also tell me the time",)))
    assert not found.hit and "several free-text arguments" in found.reason


def test_a_function_without_free_text_gets_exact_hits_only() -> None:
    cache = make_cache()
    cache.put(call(42), "forty-two")
    assert cache.lookup(call(42)).value == "forty-two"
    assert not cache.lookup(call(43)).hit


class SharedStore(LocalL2Store):
    """A store other tenants and nodes read (as the fleet's will be)."""

    shared = True


def test_sensitive_calls_never_reach_a_shared_tier() -> None:
    store = SharedStore()
    cache = make_cache(store=store)
    assert cache.put(call(sensitive=True), "private answer") is False
    assert len(store) == 0 and store.stats().puts == 0
    cache.put(call(), "public answer")  # the same text, not sensitive: stored
    found = cache.lookup(call(sensitive=True))
    assert not found.hit and "sensitive" in found.reason
    assert cache.stats().refused_sensitive == 1


def test_sensitive_calls_may_use_a_private_tier() -> None:
    cache = make_cache(store=LocalL2Store())
    assert cache.put(call(sensitive=True), "private answer")
    assert cache.lookup(call(sensitive=True)).value == "private answer"


def test_ttl_and_size_bound() -> None:
    clock = FakeClock()
    cache = make_cache(clock=clock, ttl_s=10.0, max_entries=2)
    cache.put(call(), "answer")
    clock.advance(9.0)
    assert cache.lookup(call(PARAPHRASE)).hit
    clock.advance(1.0)
    assert not cache.lookup(call(PARAPHRASE)).hit
    for i in range(3):
        cache.put(call(f"question number {i} about tariffs"), i)
    assert len(cache.store) == 2
    assert not cache.lookup(call("question number 0 about tariffs")).hit


def test_invalidation_by_function_and_namespace() -> None:
    cache = make_cache()
    for ns in ("a", "b"):
        for fn in ("f", "g"):
            cache.put(call(ns=ns, fn=fn), f"{ns}{fn}")
    assert cache.invalidate_function("a", "f") == 1
    assert not cache.lookup(call(ns="a", fn="f")).hit
    assert cache.lookup(call(ns="a", fn="g")).hit
    assert cache.invalidate_namespace("b") == 2
    assert not cache.lookup(call(ns="b", fn="g")).hit
    assert cache.lookup(call(ns="a", fn="g")).hit


def test_large_namespace_uses_hnsw_and_the_exact_cosine() -> None:
    embedder = HashingEmbedder(256)
    cache = make_cache(embedder, exact_index_max=16, threshold=0.6)
    for i in range(200):
        cache.put(call(f"unrelated filler question {i} about topic {i * 7}"), i)
    cache.put(call(), "answer")
    assert "hnsw" in cache.store.index_kinds().values()  # type: ignore[attr-defined]
    found = cache.lookup(call(PARAPHRASE))
    assert found.value == "answer"
    expected = float(embedder.embed([Q])[0].astype(float) @ embedder.embed([PARAPHRASE])[0])
    assert found.similarity == pytest.approx(expected, abs=1e-9)


# --- shadow verification -----------------------------------------------------------------


def test_shadow_checks_turn_a_namespace_off_and_say_so(tmp_path: Path) -> None:
    embedder = HashingEmbedder(256)
    book = CalibrationBook(tmp_path / "book.json",
                           defaults={embedder.model_id: calibration_for(embedder)})
    cache = make_cache(embedder, book=book, shadow_rate=1.0)
    cache.put(call(), "answer")
    found = cache.lookup(call(PARAPHRASE))
    assert found.hit and found.shadow and "shadow check" in found.reason
    assert cache.verify(found, "answer") is True       # agreed: stays on
    assert cache.effective().off_reason is None
    found = cache.lookup(call(PARAPHRASE))
    assert cache.verify(found, "a different answer") is False
    off = cache.effective().off_reason
    assert off is not None and "1 wrong answer(s) in 2" in off and "1.0% target" in off
    after = cache.lookup(call(PARAPHRASE))
    assert not after.hit and "semantic off" in after.reason and "shadow" in after.reason
    assert cache.lookup(call()).tier == "exact"  # exact hits are still served
    # the decision survives a restart, and a new calibration turns the namespace back on
    reloaded = CalibrationBook(tmp_path / "book.json",
                               defaults={embedder.model_id: calibration_for(embedder)})
    assert reloaded.effective("default", embedder).off_reason == off
    reloaded.set("default", calibration_for(embedder, 0.7))
    assert reloaded.effective("default", embedder).off_reason is None


def test_shadow_needs_evidence_beyond_the_target() -> None:
    embedder = HashingEmbedder(256)
    cache = make_cache(embedder, shadow_rate=1.0, book=CalibrationBook(defaults={
        embedder.model_id: calibration_for(embedder, target=0.2)}))
    cache.put(call(), "answer")
    results = []
    for i in range(12):  # 1 wrong in 12: 8% observed, lower bound 0.4% < 20% target
        found = cache.lookup(call(PARAPHRASE))
        results.append(cache.verify(found, "wrong" if i == 0 else "answer"))
    assert results.count(False) == 1
    assert cache.effective().off_reason is None
    assert cache.book.shadow("default").checks == 12


def test_shadow_sampling_follows_the_rate() -> None:
    cache = make_cache(shadow_rate=0.25)
    cache.put(call(), "answer")
    shadows = sum(cache.lookup(call(PARAPHRASE)).shadow for _ in range(400))
    assert 60 <= shadows <= 140  # seeded rng: 25% of 400, loosely


def test_verify_takes_only_semantic_hits() -> None:
    cache = make_cache()
    cache.put(call(), "answer")
    with pytest.raises(ValueError):
        cache.verify(cache.lookup(call()), "answer")


# --- model changes -----------------------------------------------------------------------


def test_a_model_change_invalidates_the_namespace_threshold(tmp_path: Path) -> None:
    old = HashingEmbedder(256)
    book = CalibrationBook(tmp_path / "book.json", defaults={})
    book.set("default", calibration_for(old, 0.6))
    assert book.effective("default", old).threshold == 0.6
    new = HashingEmbedder(256, seed=1)  # another model id and other weights
    effective = book.effective("default", new)
    assert effective.calibration is None and effective.threshold is None
    assert "recalibrate" in effective.note and old.model_id in effective.note
    cache = make_cache(new, book=book)
    cache.put(call(), "answer")
    found = cache.lookup(call(PARAPHRASE))
    assert not found.hit and "recalibrate" in found.reason
    assert cache.lookup(call()).hit  # exact hits do not depend on a model


def test_same_model_id_with_other_weights_is_a_change_too() -> None:
    embedder = HashingEmbedder(256)
    stale = replace(calibration_for(embedder), weights_sha256="0" * 64)
    book = CalibrationBook(defaults={embedder.model_id: stale})
    effective = book.effective("ns", embedder)
    assert effective.origin == "none" and effective.threshold is None


def test_an_older_guard_version_is_a_change_too() -> None:
    embedder = HashingEmbedder(256)
    old = replace(calibration_for(embedder), guard_version=GUARD_VERSION - 1)
    assert CalibrationBook(defaults={embedder.model_id: old}).effective(
        "ns", embedder).threshold is None


def test_namespace_inherits_the_default_until_it_has_its_own() -> None:
    embedder = HashingEmbedder(256)
    book = CalibrationBook(defaults={embedder.model_id: calibration_for(embedder, 0.6)})
    assert book.effective("ns", embedder).origin == "default"
    book.set("ns", calibration_for(embedder, 0.8))
    assert (book.effective("ns", embedder).origin, book.effective("ns", embedder).threshold) \
        == ("namespace", 0.8)
    assert book.effective("other", embedder).threshold == 0.6


def test_entries_of_another_model_are_never_compared() -> None:
    store = LocalL2Store()
    first = make_cache(HashingEmbedder(256), store=store)
    first.put(call(), "answer")
    second_model = HashingEmbedder(256, seed=5)
    second = make_cache(second_model, store=store)
    found = second.lookup(call(PARAPHRASE))
    assert not found.hit and "no similar entry" in found.reason
    assert second.lookup(call()).hit  # tier 0 is model-free


def test_a_calibration_without_threshold_serves_exact_only() -> None:
    cache = make_cache(threshold=None)
    cache.put(call(), "answer")
    assert not cache.lookup(call(PARAPHRASE)).hit
    assert cache.lookup(call()).hit


def test_shipped_default_applies_to_the_real_model(minilm: Embedder) -> None:
    cache = SemanticCache(L2Config(shadow_rate=0.0), minilm)
    assert cache.effective().origin == "default"
    cache.put(call("How do I reset my password?"), "Use the reset link.")
    hit = cache.lookup(call("how do I reset my password please"))
    assert hit.hit and hit.tier == "semantic"
    miss = cache.lookup(call("How do I reset my PIN?"))
    assert not miss.hit
