"""What a routed call keeps between calls (call-site contexts, stable decisions, runners and
recorders) gives exactly the answers of working everything out again: circuit breakers,
health checks, policy and version changes, sensitivity and metadata all still decide."""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest

from delegation.config import parse_config
from delegation.context import arg_type_fingerprint
from delegation.engine import Layer
from delegation.errors import CallUnavailable, ProviderUnavailable, SecurityViolation
from delegation.extensions import Extensions, ProviderKindSpec
from delegation.health import CircuitState
from delegation.learning import Learner, TargetRecord
from delegation.providers import build_registry
from delegation.providers.base import BaseProvider, Health, ModelResult
from delegation.runtime import Runtime
from delegation.targets import LOCAL_PURE, LocalModel, RemoteModel
from delegation.testing import FakeClock
from rtfs.deadline import Deadline
from rtfs.router import CallKind, RoutedCall
from rtfs.values import EMPTY_MAP, Keyword, Map, TaggedLiteral

CONFIG = """
[delegation.static_routes]
"ask" = { target = "remote-echo", fallback = "local-summarizer" }
"only-echo" = "remote-echo"
"secret-*" = "local-summarizer"
[delegation.remote_providers.echo]
kind = "test-echo"
capabilities = ["analyze"]
[delegation.local_models.summarizer]
kind = "extractive-summarizer"
capabilities = ["analyze"]
[delegation.security]
sensitive = ["secret-*"]
[delegation.l2]
enabled = false
[delegation.l4]
store = "memory://router-memo"
"""


class Echo(BaseProvider):
    """A provider in this process whose health and failures the test sets."""

    instances: list[Echo] = []

    def __init__(self, cfg: Any, ctx: Any) -> None:
        super().__init__(cfg.id)
        self.healthy, self.failing = True, False
        self.infers = self.checks = 0
        Echo.instances.append(self)

    def infer(self, prompt: str, **params: Any) -> ModelResult:
        self.infers += 1
        if self.failing:
            raise ProviderUnavailable(self.id, "told to fail")
        return ModelResult(self.id, f"echo {prompt}", None, 0.0, 0.0)

    def health(self) -> Health:
        self.checks += 1
        return Health(self.healthy, "as the test says")


class CountingEngine:
    """The runtime's engine, counting how often it is asked."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.asked = inner, 0

    def decide(self, ctx: Any) -> Any:
        self.asked += 1
        return self.inner.decide(ctx)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(0.0)


@pytest.fixture
def rt(clock: FakeClock) -> Runtime:
    ext = Extensions()
    ext.add_provider_kind(ProviderKindSpec("test-echo", {}, Echo))
    config = parse_config(CONFIG, extensions=ext)
    runtime = Runtime(config, registry=build_registry(config, {}, extensions=ext),
                      monotonic=clock, out=io.StringIO(), read_only=True)
    runtime.router.engine = CountingEngine(runtime.router.engine)
    return runtime


def echo() -> Echo:
    return Echo.instances[-1]


def asked(rt: Runtime) -> int:
    return rt.router.engine.asked  # type: ignore[attr-defined, no-any-return]


def test_a_stable_decision_is_decided_once_and_still_runs_every_call(rt):
    for n in range(5):
        assert rt.route_call("ask", (f"hi {n}",)) == f"echo hi {n}"
    assert asked(rt) == 1 and echo().infers == 5
    assert echo().checks == 5  # the provider's health check still runs for every call
    calls = rt.router.take_records()
    assert [c.layer for c in calls] == ["static-exact"] * 5
    assert [c.detail for c in calls] == [f'"echo hi {n}"' for n in range(5)]
    assert rt.learner.records("ask")[RemoteModel("echo")].calls == 5


def test_an_opening_breaker_sends_the_very_next_call_elsewhere(rt, clock):
    rt.route_call("ask", ("warm",))
    echo().failing = True
    for _ in range(3):  # each failure runs on the route's fallback; the third opens
        rt.route_call("ask", ("x",))
    assert rt.health.breaker(RemoteModel("echo")).state is CircuitState.OPEN
    infers = echo().infers
    rt.router.take_records()
    rt.route_call("ask", ("x",))
    [call] = rt.router.take_records()
    assert echo().infers == infers  # the open circuit: the provider was not contacted
    assert call.layer == "fallback" and call.target == "LocalModel(summarizer)"
    with pytest.raises(CallUnavailable, match="circuit open"):
        rt.route_call("only-echo", ("x",))
    echo().failing = False
    clock.advance(31)  # past the reset timeout: the trial call closes the circuit
    assert rt.route_call("ask", ("back",)) == "echo back"
    assert rt.health.breaker(RemoteModel("echo")).state is CircuitState.CLOSED
    before = asked(rt)
    assert rt.route_call("ask", ("again",)) == "echo again"
    assert asked(rt) == before  # stable again: not decided anew
    assert rt.router.take_records()[-1].layer == "static-exact"


def test_a_failing_health_check_is_seen_by_the_next_call(rt):
    rt.route_call("ask", ("warm",))
    echo().healthy = False
    rt.route_call("ask", ("x",))
    [_, call] = rt.router.take_records()
    assert call.layer == "fallback" and "unavailable (as the test says)" in call.reason
    assert echo().infers == 1
    echo().healthy = True
    assert rt.route_call("ask", ("y",)) == "echo y"


def test_a_version_change_decides_again(rt):
    rt.route_call("ask", ("a",))
    rt.route_call("ask", ("b",))
    assert asked(rt) == 1
    rt.router.version += 1  # what an L4 change does
    rt.route_call("ask", ("c",))
    assert asked(rt) == 2


def test_a_new_policy_or_engine_decides_again(rt):
    from dataclasses import replace

    rt.route_call("ask", ("a",))
    rt.router.config = replace(rt.router.config, policy_version="2")
    rt.route_call("ask", ("b",))
    assert asked(rt) == 2
    rt.router.engine = other = CountingEngine(rt.router.engine.inner)  # type: ignore[attr-defined]
    rt.route_call("ask", ("c",))
    assert other.asked == 1


def test_decisions_from_state_are_asked_of_the_engine_every_call(rt):
    rt.route_call("analyze", ("a",), kind=CallKind.CAPABILITY)
    rt.route_call("analyze", ("b",), kind=CallKind.CAPABILITY)
    assert asked(rt) == 2  # a capability (then L1 plan) decision is not stable
    layers = [c.layer for c in rt.router.take_records()]
    assert layers == ["capability", "l1-cache"]


def test_sensitivity_follows_the_function_whatever_the_call_site_kept(rt):
    rt.run('(defn secret-fn [x] (str "s:" x))\n(def alias secret-fn)')
    plain = RoutedCall("only-echo", CallKind.FUNCTION, None, None, EMPTY_MAP, ("x",),
                       lambda: "ran here")
    assert rt.router.route(plain) == "echo x"
    # the same name written at the call site, but the value is a sensitive function
    callee = rt.vm.globals["alias"]
    sensitive = RoutedCall("only-echo", CallKind.FUNCTION, callee, None, EMPTY_MAP, ("x",),
                           lambda: "ran here", names=frozenset({"secret-fn", "alias"}))
    with pytest.raises(SecurityViolation, match="sensitive"):
        rt.router.route(sensitive)
    assert rt.router.route(plain) == "echo x"  # and the plain call is still plain


def test_call_site_metadata_is_honoured_per_map(rt):
    meta = Map({Keyword("sensitive"): True})
    marked = RoutedCall("only-echo", CallKind.FUNCTION, None, None, meta, ("x",),
                        lambda: "ran here")
    unmarked = RoutedCall("only-echo", CallKind.FUNCTION, None, None, EMPTY_MAP, ("x",),
                          lambda: "ran here")
    for _ in range(2):
        assert rt.router.route(unmarked) == "echo x"
        with pytest.raises(SecurityViolation):
            rt.router.route(marked)


@pytest.mark.parametrize("args", [
    ("text",), (1,), (1.5,), (True,), (None,), (Keyword("k"),), ((1, 2),),
    (Map({Keyword("a"): 1}),), (frozenset({1}),), ("a", 2, None), (),
    (TaggedLiteral("inst", "2024-01-01"),), (TaggedLiteral("uuid", "x"),), ({"a": 1},),
])
def test_kept_contexts_equal_contexts_built_from_scratch(rt, args):
    factory = rt.contexts
    meta = Map({Keyword("complexity"): Keyword("high")})
    for metadata in (EMPTY_MAP, meta):
        call = RoutedCall("thing", CallKind.FUNCTION, None, None, metadata, args, lambda: 0)
        for _ in range(2):  # built, then found
            kept = factory.build(call)
            fresh = factory.context("thing", args, metadata, None, has_source=False)
            assert kept == fresh
            assert kept.arg_type_fingerprint == arg_type_fingerprint(args)


def test_tagged_literals_with_different_tags_are_different_signatures(rt):
    def ctx(tag: str) -> Any:
        return rt.contexts.build(RoutedCall("thing", CallKind.FUNCTION, None, None, EMPTY_MAP,
                                            (TaggedLiteral(tag, "v"),), lambda: 0))

    assert ctx("inst").arg_type_fingerprint != ctx("uuid").arg_type_fingerprint
    assert ctx("inst").arg_type_fingerprint == ctx("inst").arg_type_fingerprint


def test_an_opening_circuit_changes_the_runtime_hash_of_kept_contexts(rt, clock):
    call = RoutedCall("thing", CallKind.FUNCTION, None, None, EMPTY_MAP, ("x",), lambda: 0)
    before = rt.contexts.build(call).runtime_context_hash
    for _ in range(3):
        rt.health.record(RemoteModel("echo"), False)
    clock.advance(2)  # past the availability TTL
    after = rt.contexts.build(call)
    assert after.runtime_context_hash != before
    assert after == rt.contexts.context("thing", ("x",), None, None, has_source=False)


def test_bad_metadata_is_an_error_on_every_call(rt):
    bad = RoutedCall("thing", CallKind.FUNCTION, None, None, Map({Keyword("nonsense"): 1}),
                     ("x",), lambda: 0)
    for _ in range(2):
        with pytest.raises(Exception, match="nonsense"):
            rt.contexts.build(bad)


# -- the parts the router prepares -------------------------------------------------------------

def test_a_recorder_adds_what_record_adds():
    by_record, by_recorder = Learner(), Learner()
    target = LocalModel("m")
    add = by_recorder.recorder("f", target)
    assert by_recorder.records("f") == {}  # nothing until an outcome
    for ok, latency in ((True, 0.1), (False, 0.3), (True, 0.2)):
        by_record.record("f", target, ok, latency, 0.5)
        add(ok, latency, 0.5)
    assert by_recorder.records("f") == by_record.records("f")


def test_a_recorder_keeps_feeding_a_record_that_load_replaced(tmp_path):
    saved = Learner()
    saved.record("f", LocalModel("m"), True, 1.0)
    saved.save(tmp_path / "o.msgpack")
    learner = Learner()
    add = learner.recorder("f", LocalModel("m"))
    add(False, 0.5, 0.0)
    learner.load(tmp_path / "o.msgpack")
    add(True, 0.5, 0.0)
    assert learner.records("f")[LocalModel("m")] == TargetRecord(2, 2, 0.3 * 0.5 + 0.7, 0.0)


def test_a_recorder_of_a_subclass_calls_its_record():
    class Counting(Learner):
        seen = 0

        def record(self, *args: Any, **kw: Any) -> None:
            Counting.seen += 1
            super().record(*args, **kw)

    learner = Counting()
    learner.recorder("f", LocalModel("m"))(True, 0.1, 0.0)
    assert Counting.seen == 1 and learner.records("f")[LocalModel("m")].calls == 1


def test_a_runner_answers_as_run_does(rt):
    executor = rt.router.executor
    text = "One sentence here. Another one there. And a third."
    for args in (("a",), (text, Map({Keyword("max-sentences"): 1})), (1, "b")):
        call = RoutedCall("ask", CallKind.FUNCTION, None, None, EMPTY_MAP, args,
                          lambda: "local")
        for target in (RemoteModel("echo"), LocalModel("summarizer")):
            assert executor.runner(target)(call) == executor.run(target, call)
    assert executor.runner(LOCAL_PURE)(call) == ("local", 0.0)
    with pytest.raises(Exception, match="nowhere"):
        executor.runner(RemoteModel("nowhere"))(call)


def test_no_record_is_lost_while_calls_and_takers_run_together(rt):
    taken: list[Any] = []

    def calls() -> None:
        for n in range(300):
            rt.route_call("ask", (str(n),))

    threads = [threading.Thread(target=calls) for _ in range(3)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        taken += rt.router.take_records()
    for thread in threads:
        thread.join()
    taken += rt.router.take_records()
    assert len(taken) == 900 and all(c.outcome == "ok" for c in taken)


def test_a_refused_call_is_refused_every_time(rt):
    for _ in range(3):
        with pytest.raises(SecurityViolation):
            rt.route_call("only-echo", ("x",), metadata={Keyword("sensitive"): True})
    assert all(c.outcome == "refused" and c.layer == str(Layer.SECURITY)
               for c in rt.router.take_records())


# -- the direct path and the general path trace the same ------------------------------------------

def settled(rt: Runtime) -> list[dict[str, Any]]:
    return [{k: v for k, v in c.to_dict().items() if k != "latency_s"}
            for c in rt.router.take_records()]


def far() -> Deadline:
    return Deadline(1e12, FakeClock(0.0))  # never reached: the call takes the general path


def test_a_successful_call_traces_alike_on_both_paths(rt):
    assert rt.route_call("ask", ("x",)) == rt.route_call("ask", ("x",), deadline=far())
    direct, general = settled(rt)
    assert direct == general and direct["outcome"] == "ok" and direct["attempts"] == []


def test_a_failing_target_falls_back_alike_on_both_paths(rt):
    rt.route_call("ask", ("warm",))
    rt.router.take_records()
    echo().failing = True
    first = rt.route_call("ask", ("One sentence. Two.",))
    second = rt.route_call("ask", ("One sentence. Two.",), deadline=far())
    assert first == second
    direct, general = settled(rt)
    assert direct == general and direct["layer"] == "fallback"
    assert direct["attempts"] == ["RemoteModel(echo): ProviderUnavailable: provider echo "
                                  "unavailable: told to fail"]
    assert rt.learner.records("ask")[RemoteModel("echo")].calls == 3  # both failures counted


def test_an_error_that_is_no_provider_failure_is_raised_alike_on_both_paths(rt):
    rt.route_call("only-echo", ("warm",))
    rt.router.take_records()
    echo().failing = True
    Echo.instances[-1].infer = lambda prompt, **kw: 1 / 0  # type: ignore[method-assign]
    with pytest.raises(ZeroDivisionError):
        rt.route_call("only-echo", ("x",))
    with pytest.raises(ZeroDivisionError):
        rt.route_call("only-echo", ("x",), deadline=far())
    direct, general = settled(rt)
    assert direct == general and direct["outcome"] == "error"
    assert "ZeroDivisionError" in direct["detail"]
