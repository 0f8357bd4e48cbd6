"""L2 around the model calls the router runs: consulted only where it pays.

A lookup costs an embedding (about 5-10 ms with MiniLM). `ModelResults.consult` asks L2 for a
`LocalModel`/`RemoteModel` call only when the call is expected to cost more: it costs money
(`cost_per_call > 0`), or the learner's typical latency for this function on this target is
above the lookup's measured cost, or it is a remote call not yet measured. After the call
runs, `settle` verifies a shadow-sampled hit and stores the answer when the call was worth
caching (it cost money or took longer than a lookup).

The embedding model loads on the first consult or store, not at start; a model that cannot
load turns L2 off for the process with one warning, never fails a call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from delegation.configtypes import EXACT_INPUT_KINDS, DelegationConfig
from delegation.l2.errors import EmbedderUnavailable
from delegation.l2.keys import L2Call
from delegation.learning import Learner
from delegation.targets import ExecTarget, LocalModel, RemoteModel

if TYPE_CHECKING:  # numpy and the model load with the cache, on first use
    from delegation.l2.cache import L2Lookup, SemanticCache

_ALPHA = 0.2  # weight of the newest lookup in the measured lookup cost


@dataclass(frozen=True, slots=True)
class Consult:
    """One model call's dealings with L2: its key and what the lookup found (None if L2 was
    not asked)."""

    call: L2Call
    found: L2Lookup | None
    note: str = ""  # e.g. the model loaded during this call
    target: ExecTarget | None = None

    @property
    def serves(self) -> bool:
        """The cached answer stands in for the call (a hit that is not a shadow check)."""
        return self.found is not None and self.found.hit and not self.found.shadow


class ModelResults:
    """The router's handle on L2.

    Args:
        config: the policy (`[delegation.l2]`, provider models and costs, policy version).
        learner: typical latency per function and target.
        make_cache: builds the `SemanticCache` (loads the model) on first use.
        warn: reports, once, that L2 is off because its model cannot load.
        timer: measures lookups.
    """

    def __init__(self, config: DelegationConfig, learner: Learner,
                 make_cache: Callable[[], SemanticCache],
                 warn: Callable[[str], None] = lambda message: None,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        self.config = config
        self.learner = learner
        self._make_cache = make_cache
        self._warn = warn
        self._timer = timer
        self._lock = threading.Lock()
        self._cache: SemanticCache | None = None
        self._off = not config.l2.enabled
        self._load_note = ""  # reported once, by the call during which the model loaded
        self.lookup_cost_s = config.l2.lookup_cost_ms / 1000.0
        # The first lookup pays for first contact with the store (an index loaded from disk,
        # a connection to the fleet's shards): warm-up, like the model's first inference, so
        # it is not measured as what a lookup costs.
        self._warm = False

    @property
    def cache(self) -> SemanticCache | None:
        """The semantic cache, once built (None before, or when L2 is off)."""
        return self._cache

    def consult(self, target: ExecTarget, symbol: str, args: tuple[Any, ...],
                sensitive: bool, tenant: str | None = None) -> Consult | None:
        """Look the call up when that pays; None when L2 does not apply to it at all."""
        if self._off or not isinstance(target, (LocalModel, RemoteModel)) or self._exact(target):
            return None
        call = L2Call(tenant or self.config.l2.namespace, symbol, self._target_key(target),
                      self.config.policy_version, args, sensitive)
        if not self._pays(symbol, target):
            return Consult(call, None, target=target)
        cache = self._ready()
        if cache is None:
            return None
        note = self._take_load_note()
        started = self._timer()
        found = cache.lookup(call)
        if self._warm:
            self._measured(self._timer() - started)
        else:
            self._warm = True
        return Consult(call, found, note, target)

    def settle(self, consult: Consult, value: Any, latency_s: float, cost: float) -> str:
        """After the call ran: verify a shadow hit, store the answer if worth it; return a
        note for the trace ("stored", "shadow: agreed", ...; "" when nothing happened)."""
        notes = []
        cache = self._cache
        found = consult.found
        if cache is not None and found is not None and found.shadow:
            agreed = cache.verify(found, value)
            notes.append("shadow check: " + ("agreed" if agreed else "DISAGREED"))
        if cost > 0 or latency_s > self._worth_s(consult.target):
            cache = self._ready()
            loaded = self._take_load_note()
            if cache is not None and cache.put(consult.call, value):
                notes.append("stored" + (f" ({loaded})" if loaded else ""))
        return ", ".join(notes)

    def _exact(self, target: ExecTarget) -> bool:
        """A provider whose answer depends on every character of its input (a program):
        a similar input is no evidence of the same answer."""
        provider = (self.config.remote_providers.get(target.id)
                    if isinstance(target, RemoteModel) else None)
        return provider is not None and provider.kind in EXACT_INPUT_KINDS

    def _pays(self, symbol: str, target: ExecTarget) -> bool:
        if self._cost_per_call(target) > 0:
            return True
        record = self.learner.records(symbol).get(target)
        if record is None or record.calls == 0:
            return isinstance(target, RemoteModel)  # not measured yet: remote is presumed slow
        return record.latency_ewma_s > self._worth_s(target)

    def _worth_s(self, target: ExecTarget | None) -> float:
        """How slow a free call on `target` must be for caching it to pay."""
        if isinstance(target, LocalModel):
            return max(self.lookup_cost_s, self.config.l2.local_min_latency_ms / 1000.0)
        return self.lookup_cost_s

    def _measured(self, seconds: float) -> None:
        with self._lock:
            self.lookup_cost_s = _ALPHA * seconds + (1 - _ALPHA) * self.lookup_cost_s

    def _ready(self) -> SemanticCache | None:
        with self._lock:
            if self._cache is not None or self._off:
                return self._cache
            started = self._timer()
            try:
                cache = self._make_cache()
                cache.embedder.embed(["warm up"])  # a first inference is slow: not a lookup
                self._cache = cache
                self._load_note = (f"L2 model {cache.embedder.model_id} loaded in "
                                   f"{self._timer() - started:.2f} s")
            except EmbedderUnavailable as err:
                self._off = True
                self._warn(f"L2 off: {err}")
            return self._cache

    def _take_load_note(self) -> str:
        with self._lock:
            note, self._load_note = self._load_note, ""
            return note

    def _cost_per_call(self, target: ExecTarget) -> float:
        if isinstance(target, RemoteModel) and target.id in self.config.remote_providers:
            return self.config.remote_providers[target.id].cost_per_call
        if isinstance(target, LocalModel) and target.id in self.config.local_models:
            return self.config.local_models[target.id].cost_per_call
        return 0.0

    def _target_key(self, target: ExecTarget) -> str:
        """The target as L2 keys it: provider and model (a new model never serves old
        answers)."""
        if isinstance(target, RemoteModel) and target.id in self.config.remote_providers:
            provider = self.config.remote_providers[target.id]
            return f"remote-model/{target.id}/{provider.kind}/{provider.model}"
        if isinstance(target, LocalModel) and target.id in self.config.local_models:
            model = self.config.local_models[target.id]
            detail = model.rules or " ".join(model.command) or ""
            return f"local-model/{target.id}/{model.kind}/{detail}"
        return "/".join(map(str, target.to_tagged()))
