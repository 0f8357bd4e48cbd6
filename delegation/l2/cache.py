"""`SemanticCache`: the L2 facade the executor asks before it runs a model call.

    cache = SemanticCache(L2Config(), make_embedder(config.model), book=book)
    found = cache.lookup(call)                  # L2Call: namespace, function, target, ...
    if found.hit and not found.shadow:
        return found.value                      # served from L2
    value = run_the_call()
    if found.shadow:
        cache.verify(found, value)              # a sampled semantic hit, checked
    cache.put(call, value)

Tier 0 answers when the call's free texts equal a stored call's after normalisation. Tier 1
needs exactly one free-text argument: its embedding's nearest entries in the same bucket are
checked in order of similarity; the first that the lexical guard lets through and whose exact
cosine reaches the namespace's calibrated threshold is a semantic hit. A sampled share of
semantic hits is marked `shadow`: the caller still runs the call and reports the answer, and
a namespace whose verified false-hit rate exceeds its target stops serving semantic hits.

Sensitive calls never touch a shared store (`store.shared`): not looked up, not stored.
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from delegation.l2.book import CalibrationBook, Effective
from delegation.l2.config import L2Config
from delegation.l2.embedder import Embedder, cosine
from delegation.l2.guard import features, guard, normalize
from delegation.l2.keys import L2Call, SplitCall, split_call, texts_key
from delegation.l2.store import L2Entry, L2Store, LocalL2Store

_MEMO_SIZE = 512


@dataclass(frozen=True, slots=True)
class L2Lookup:
    """What a lookup found.

    Attributes:
        hit: a stored answer applies.
        value: that answer (None on a miss).
        tier: "exact" or "semantic" on a hit, else None.
        similarity: the exact cosine of the semantic candidate considered (hit or not).
        threshold: the threshold in force (None when semantic hits are off).
        shadow: a sampled semantic hit: run the call anyway and `verify` the answer.
        namespace: the call's namespace.
        reason: one line for `--explain`.
    """

    hit: bool
    value: Any
    tier: str | None
    similarity: float | None
    threshold: float | None
    shadow: bool
    namespace: str
    reason: str

    def describe(self) -> str:
        """The explanation shown by `--explain`."""
        return self.reason


@dataclass(frozen=True, slots=True)
class L2Stats:
    """Counters of one cache since it was made."""

    lookups: int
    exact_hits: int
    semantic_hits: int
    misses: int
    guard_refusals: int
    shadow_checks: int
    shadow_false_hits: int
    puts: int
    refused_sensitive: int


class SemanticCache:
    """The L2 semantic result cache (see the module docstring).

    Args:
        config: `[delegation.l2]`.
        embedder: the model whose cosines the calibrations are for.
        store: where entries live (default: a `LocalL2Store` from the config's bounds).
        book: calibrations and shadow records (default: in memory, shipped defaults).
        rng: draws the shadow samples (inject a seeded one in tests).
        same_answer: compares a cached answer with a fresh one in shadow checks.
        timer: the store's clock when the default store is built.
        wall_clock: stamps entries.
    """

    def __init__(self, config: L2Config, embedder: Embedder, *, store: L2Store | None = None,
                 book: CalibrationBook | None = None, rng: random.Random | None = None,
                 same_answer: Callable[[Any, Any], bool] | None = None,
                 timer: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.embedder = embedder
        self.store = store if store is not None else LocalL2Store(
            config.max_entries, config.ttl_s, timer=timer, exact_max=config.exact_index_max)
        self.book = book if book is not None else CalibrationBook()
        self._rng = rng if rng is not None else random.Random()
        self._same = same_answer if same_answer is not None else _same_answer
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._counts = dict.fromkeys(L2Stats.__slots__, 0)

    # --- lookup -------------------------------------------------------------------------

    def lookup(self, call: L2Call) -> L2Lookup:
        """Find a stored answer for `call` (see the module docstring)."""
        self._count("lookups")
        ns = call.namespace
        if call.sensitive and self.store.shared:
            return self._miss(ns, None, None, "sensitive call: never looked up in a shared tier")
        split = split_call(call)
        normalized = [normalize(t) for t in split.texts]
        effective = self.book.effective(ns, self.embedder) if len(split.texts) == 1 else None
        semantic = effective is not None and effective.threshold is not None
        text = split.texts[0] if semantic else ""
        found = self.store.find(split.bucket, texts_key(normalized), self.embedder.model_id,
                                (lambda: self._embed(text)) if semantic else None,
                                self.config.candidates)
        if found.exact is not None:
            self._count("exact_hits")
            return L2Lookup(True, found.exact.value, "exact", None, None, False, ns,
                            "L2 exact hit (same input after normalisation)")
        if effective is None:
            why = "no free-text argument" if not split.texts else "several free-text arguments"
            return self._miss(ns, None, None, f"L2 miss ({why}: exact match only)")
        if effective.threshold is None:
            return self._miss(ns, None, None, f"L2 miss; semantic off: {_off(effective)}")
        return self._semantic(split, effective, found.nearest)

    def _semantic(self, split: SplitCall, effective: Effective,
                  candidates: list[tuple[L2Entry, float]]) -> L2Lookup:
        ns, threshold = split.bucket.namespace, effective.threshold
        assert threshold is not None
        query_text = split.texts[0]
        query = self._embed(query_text)  # memoized: the store's `find` embedded it already
        mine = features(query_text)
        best: tuple[float, str] | None = None
        for entry, _ in candidates:
            assert entry.vector is not None
            similarity = cosine(entry.vector, query)
            if similarity < threshold:
                best = best or (similarity, "below threshold")
                break  # candidates come most similar first; the guard is not needed below
            refusal = guard(features(entry.texts[0]), mine)
            if refusal is not None:
                self._count("guard_refusals")
                best = best or (similarity, f"guard: {refusal}")
                continue
            return self._hit(entry, similarity, effective)
        if best is None:
            return self._miss(ns, None, threshold, "L2 miss (no similar entry)")
        similarity, why = best
        return self._miss(ns, similarity, threshold,
                          f"L2 miss: nearest cosine {similarity:.3f}, {why} "
                          f"(threshold {threshold:.3f}, {effective.origin} calibration)")

    def _hit(self, entry: L2Entry, similarity: float, effective: Effective) -> L2Lookup:
        assert effective.calibration is not None and effective.threshold is not None
        ns = entry.bucket.namespace
        shadow = self._rng.random() < self.config.shadow_rate
        self._count("semantic_hits")
        cal = effective.calibration
        reason = (f"L2 semantic hit: cosine {similarity:.3f} >= {effective.threshold:.3f} "
                  f"({effective.origin} calibration of namespace {ns}, {cal.model_id}: "
                  f"{cal.false_hits}/{cal.negatives} false hits, bound {cal.upper_bound:.1%})")
        if shadow:
            reason += "; shadow check: the call runs anyway"
        return L2Lookup(True, entry.value, "semantic", similarity, effective.threshold, shadow,
                        ns, reason)

    def _miss(self, ns: str, similarity: float | None, threshold: float | None,
              reason: str) -> L2Lookup:
        self._count("misses")
        return L2Lookup(False, None, None, similarity, threshold, False, ns, reason)

    # --- storing and verifying ---------------------------------------------------------

    def put(self, call: L2Call, value: Any) -> bool:
        """Store `value` as the answer to `call`; False when policy forbids it (sensitive)."""
        if call.sensitive and self.store.shared:
            self._count("refused_sensitive")
            return False
        split = split_call(call)
        normalized = [normalize(t) for t in split.texts]
        vector = self._embed(split.texts[0]) if len(split.texts) == 1 else None
        self.store.put(L2Entry(
            bucket=split.bucket, texts_key=texts_key(normalized), texts=split.texts,
            value=value, model_id=self.embedder.model_id if vector is not None else None,
            vector=vector, created_at=self._wall_clock(), private=call.sensitive))
        self._count("puts")
        return True

    def verify(self, found: L2Lookup, actual: Any) -> bool:
        """Report the fresh answer for a shadow-checked hit; return whether they agreed."""
        if not (found.hit and found.tier == "semantic"):
            raise ValueError("verify takes a semantic hit")
        agreed = bool(self._same(found.value, actual))
        self._count("shadow_checks")
        if not agreed:
            self._count("shadow_false_hits")
        effective = self.book.effective(found.namespace, self.embedder)
        target = (effective.calibration.target_rate if effective.calibration is not None
                  else self.config.target_false_hit_rate)
        self.book.record_shadow(found.namespace, agreed, target)
        return agreed

    # --- invalidation and status ---------------------------------------------------------

    def invalidate_function(self, namespace: str, function: str) -> int:
        """Drop every entry of `function` in `namespace`; return how many."""
        return self.store.invalidate_function(namespace, function)

    def invalidate_namespace(self, namespace: str) -> int:
        """Drop every entry of `namespace`; return how many."""
        return self.store.invalidate_namespace(namespace)

    def effective(self, namespace: str | None = None) -> Effective:
        """The calibration in force for `namespace` (default: the configured one)."""
        return self.book.effective(namespace or self.config.namespace, self.embedder)

    def stats(self) -> L2Stats:
        """A snapshot of the counters."""
        with self._lock:
            return L2Stats(**self._counts)

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def _embed(self, text: str) -> np.ndarray:
        with self._lock:
            found = self._memo.get(text)
            if found is not None:
                self._memo.move_to_end(text)
                return found
        vector = self.embedder.embed([text])[0]
        with self._lock:
            self._memo[text] = vector
            if len(self._memo) > _MEMO_SIZE:
                self._memo.popitem(last=False)
        return vector


def _off(effective: Effective) -> str:
    return effective.off_reason or effective.note or "no threshold meets the target"


def _same_answer(cached: Any, fresh: Any) -> bool:
    """Answers agree when equal, strings compared after normalisation."""
    if isinstance(cached, str) and isinstance(fresh, str):
        return normalize(cached) == normalize(fresh)
    return bool(cached == fresh)
