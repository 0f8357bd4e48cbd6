"""decide(): the precedence of the layers, and the resilience and security wrappers."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from delegation.config import parse_config
from delegation.context import CallContext, metadata_from_rtfs
from delegation.engine import (
    Layer,
    ResilientDelegationEngine,
    SecurityAwareDelegationEngine,
    StaticDelegationEngine,
)
from delegation.errors import DelegationError
from delegation.health import CircuitBreaker, CircuitState, HealthMonitor
from delegation.l1 import L1PlanCache, new_plan
from delegation.learning import Learner
from delegation.metadata import DelegationMetadata
from delegation.providers.base import Health
from delegation.providers.registry import CapabilityRegistry
from delegation.targets import LOCAL_PURE, L4CacheHit, LocalModel, RemoteModel
from delegation.testing import FakeClock
from rtfs.values import DelegationHint, HintKind, Keyword, Map

CONFIG = """
[delegation]
default_target = "local-pure"

[delegation.static_routes]
"sentiment" = "local-sentiment-rules"
"ai-*" = "remote-big"
"ai-summarize" = { target = "remote-cheap", fallback = "local-summarizer" }
"ai-sum*" = "remote-cheap"
"ai-private" = { target = "remote-big", fallback = "local-summarizer" }

[delegation.remote_providers.big]
kind = "openai-chat"
base_url = "http://127.0.0.1:9/v1"
model = "big"
cost_per_call = 0.05
capabilities = ["analyze"]

[delegation.remote_providers.cheap]
kind = "openai-chat"
base_url = "http://127.0.0.1:9/v1"
model = "cheap"
cost_per_call = 0.001
capabilities = ["analyze"]

[delegation.local_models.sentiment-rules]
kind = "sentiment-rules"
capabilities = ["sentiment", "analyze"]

[delegation.local_models.summarizer]
kind = "extractive-summarizer"

[delegation.security]
allowed_remote_providers = ["big", "cheap"]
sensitive = ["secret-*"]
"""


@dataclass
class Published:
    pointer: str = "file:///l4/blobs/abc"
    signature: str = "ab" * 32
    label: str = "abc (key 1234)"


class Directory:
    def __init__(self, names):
        self.names = set(names)

    def find_by_name(self, symbol):
        return Published() if symbol in self.names else None


def context(symbol, *, hint=None, meta=None, fp=1, runtime=2, has_source=False,
            sensitive=False):
    metadata = DelegationMetadata.from_mapping(meta) if meta else DelegationMetadata()
    return CallContext(symbol, fp, runtime, metadata, hint, sensitive or metadata.sensitive,
                       has_source)


@pytest.fixture
def config():
    return parse_config(CONFIG)


def capabilities(config):
    entries = [(cap, RemoteModel(pid)) for pid, p in config.remote_providers.items()
               for cap in p.capabilities]
    entries += [(cap, LocalModel(mid)) for mid, m in config.local_models.items()
                for cap in m.capabilities]
    return CapabilityRegistry(entries)


@pytest.fixture
def engine(config):
    plans = L1PlanCache(ttl_s=60, timer=lambda: 0.0, wall_clock=lambda: 0.0)
    plans.put("planned", "0000000000000003",
              new_plan(RemoteModel("cheap"), 0.9, "earlier decision", clock=lambda: 0.0))
    learner = Learner(min_calls=2)
    for _ in range(3):
        learner.record("learned-fn", LocalModel("summarizer"), True, 0.01)
    return StaticDelegationEngine(config, plans=plans, capabilities=capabilities(config),
                                  l4=Directory({"remote-helper"}), learner=learner)


@pytest.mark.parametrize("ctx, target, layer", [
    # an explicit hint beats a static route for the same name
    (context("sentiment", hint=DelegationHint(HintKind.REMOTE, "big")), RemoteModel("big"),
     Layer.HINT),
    (context("x", hint=DelegationHint(HintKind.LOCAL)), LOCAL_PURE, Layer.HINT),
    (context("x", hint=DelegationHint(HintKind.LOCAL_MODEL, "summarizer")),
     LocalModel("summarizer"), Layer.HINT),
    (context("x", hint=DelegationHint(HintKind.TARGET, "remote-cheap")), RemoteModel("cheap"),
     Layer.HINT),
    # static: exact beats every glob; the most specific glob beats a broader one
    (context("ai-summarize"), RemoteModel("cheap"), Layer.STATIC_EXACT),
    (context("ai-summary"), RemoteModel("cheap"), Layer.STATIC_GLOB),
    (context("ai-other"), RemoteModel("big"), Layer.STATIC_GLOB),
    (context("sentiment", meta={"complexity": "high"}), LocalModel("sentiment-rules"),
     Layer.STATIC_EXACT),
    # L1: a plan for this (agent, task) decides before metadata and capabilities
    (context("planned", fp=1, runtime=2), RemoteModel("cheap"), Layer.L1),
    (context("planned", fp=1, runtime=6), LOCAL_PURE, Layer.DEFAULT),
    # metadata really changes outcomes
    (context("analyze", meta={"complexity": "high", "confidence": 0.2}), RemoteModel("big"),
     Layer.METADATA),
    (context("analyze", meta={"complexity": "low"}), LocalModel("sentiment-rules"),
     Layer.METADATA),
    (context("analyze", meta={"complexity": "high", "agent_cost": 0.01}), RemoteModel("cheap"),
     Layer.METADATA),
    (context("analyze", meta={"agent_cost": 0.0}), LocalModel("sentiment-rules"),
     Layer.METADATA),
    (context("whatever", meta={"delegated_agent": "cheap"}), RemoteModel("cheap"),
     Layer.METADATA),
    (context("whatever", meta={"delegated_agent": "cheap", "agent_trust_score": 0.1}),
     LOCAL_PURE, Layer.DEFAULT),
    # capability registry, then L4 by name, then learned scores, then the default
    (context("analyze"), RemoteModel("big"), Layer.CAPABILITY),
    (context("remote-helper"), L4CacheHit("file:///l4/blobs/abc", "ab" * 32), Layer.L4),
    (context("remote-helper", has_source=True), LOCAL_PURE, Layer.DEFAULT),
    (context("learned-fn"), LocalModel("summarizer"), Layer.LEARNED),
    (context("unknown"), LOCAL_PURE, Layer.DEFAULT),
])
def test_precedence(engine, ctx, target, layer):
    decision = engine.decide(ctx)
    assert (decision.target, decision.layer) == (target, layer), decision.reason
    assert decision.reason


def test_route_decision_carries_its_fallback_and_line(engine):
    decision = engine.decide(context("ai-summarize"))
    assert decision.fallback == LocalModel("summarizer")
    assert "line" in decision.reason


def test_hint_naming_an_undeclared_target_is_a_clear_error(engine):
    with pytest.raises(DelegationError, match="remote-nowhere"):
        engine.decide(context("x", hint=DelegationHint(HintKind.TARGET, "remote-nowhere")))


def test_l4_layer_is_off_when_the_config_disables_it():
    config = parse_config(CONFIG.replace('default_target = "local-pure"',
                                         'default_target = "local-pure"\nenable_l4_cache = false'))
    engine = StaticDelegationEngine(config, l4=Directory({"remote-helper"}))
    assert engine.decide(context("remote-helper")).layer is Layer.DEFAULT


def test_metadata_from_rtfs_maps_keywords_and_hint_extras():
    meta = metadata_from_rtfs(Map({Keyword("complexity"): Keyword("high"),
                                   Keyword("confidence"): 0.3}), [("sensitive", True)])
    assert (meta.complexity, meta.confidence, meta.sensitive) == ("high", 0.3, True)
    with pytest.raises(DelegationError, match="complexty"):
        metadata_from_rtfs(Map({Keyword("complexty"): Keyword("high")}))


# -- wrappers ---------------------------------------------------------------------------------
def health_of(unhealthy):
    return lambda target: Health(target not in unhealthy, f"{target} is down")


def test_resilient_uses_a_healthy_fallback(engine):
    resilient = ResilientDelegationEngine(engine, health_of({RemoteModel("cheap")}))
    decision = resilient.decide(context("ai-summarize"))
    assert (decision.target, decision.layer) == (LocalModel("summarizer"), Layer.FALLBACK)
    assert decision.replaced.target == RemoteModel("cheap")


def test_resilient_says_why_nothing_can_serve(engine):
    down = {RemoteModel("cheap"), LocalModel("summarizer")}
    decision = ResilientDelegationEngine(engine, health_of(down)).decide(context("ai-summarize"))
    assert decision.target is None and decision.layer is Layer.UNAVAILABLE
    assert "fallback" in decision.reason and "down" in decision.reason
    no_fallback = ResilientDelegationEngine(engine, health_of({RemoteModel("big")}))
    assert no_fallback.decide(context("ai-other")).layer is Layer.UNAVAILABLE


def test_healthy_targets_pass_through_unchanged(engine):
    decision = ResilientDelegationEngine(engine, health_of(set())).decide(context("ai-other"))
    assert (decision.target, decision.layer) == (RemoteModel("big"), Layer.STATIC_GLOB)


def secure(engine, config, unhealthy=frozenset()):
    inner = SecurityAwareDelegationEngine(engine, config, health_of(unhealthy))
    return ResilientDelegationEngine(inner, health_of(unhealthy))


def test_sensitive_remote_call_runs_on_its_local_fallback(engine, config):
    decision = secure(engine, config).decide(context("ai-private", sensitive=True))
    assert (decision.target, decision.layer) == (LocalModel("summarizer"), Layer.SECURITY)


def test_sensitive_call_without_a_local_target_is_refused(engine, config):
    decision = secure(engine, config).decide(context("ai-other", meta={"sensitive": True}))
    assert decision.target is None and decision.layer is Layer.SECURITY
    assert decision.reason.startswith("refused")


def test_policy_pattern_marks_calls_sensitive(config):
    assert config.security.is_sensitive("secret-plan")
    assert not config.security.is_sensitive("plan")


def test_remote_fallback_of_a_sensitive_call_is_withheld(engine, config):
    # the local target is down; its remote fallback must not be used for a sensitive call
    down = {LocalModel("sentiment-rules")}
    config2 = parse_config(CONFIG.replace(
        '"sentiment" = "local-sentiment-rules"',
        '"sentiment" = { target = "local-sentiment-rules", fallback = "remote-big" }'))
    engine2 = StaticDelegationEngine(config2)
    decision = secure(engine2, config2, down).decide(context("sentiment", sensitive=True))
    assert decision.target is None and decision.layer is Layer.SECURITY
    assert "sentiment-rules" in decision.reason and "never leaves" in decision.reason
    not_sensitive = secure(engine2, config2, down).decide(context("sentiment"))
    assert (not_sensitive.target, not_sensitive.layer) == (RemoteModel("big"), Layer.FALLBACK)


def test_provider_outside_the_allow_list_is_never_chosen(engine):
    config = parse_config(CONFIG.replace('allowed_remote_providers = ["big", "cheap"]',
                                         'allowed_remote_providers = ["cheap"]'))
    decision = secure(StaticDelegationEngine(config), config).decide(context("ai-other"))
    assert decision.target is None and "allow-list" in decision.reason


# -- circuit breaker ----------------------------------------------------------------------------

def test_circuit_opens_after_failures_and_half_opens_after_the_timeout():
    clock = FakeClock(0.0)
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout_s=10, timer=clock)
    breaker.record_failure()
    assert breaker.state is CircuitState.CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN and not breaker.allow()
    clock.now = 10.0
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # one trial at a time
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    clock.now = 20.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED and breaker.failures == 0


def test_health_monitor_reports_an_open_circuit_before_asking_the_provider():
    class Registry:
        asked = 0

        def get(self, target):
            Registry.asked += 1
            return type("P", (), {"health": lambda self: Health(True, "fine")})()

    clock = FakeClock(0.0)
    monitor = HealthMonitor(Registry(), failure_threshold=1, reset_timeout_s=5, timer=clock)
    target = RemoteModel("big")
    assert monitor(target).ok and Registry.asked == 1
    monitor.record(target, False)
    status = monitor(target)
    assert not status.ok and "circuit open" in status.reason and Registry.asked == 1
    assert monitor(LOCAL_PURE).ok
