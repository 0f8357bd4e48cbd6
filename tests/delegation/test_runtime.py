"""The embedded runtime end to end, against a real chat-completions server on 127.0.0.1."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from delegation.config import default_config, parse_config
from delegation.errors import CallUnavailable, SecurityViolation
from delegation.health import CircuitState
from delegation.runtime import Runtime
from delegation.targets import RemoteModel
from rtfs.errors import HostError, UnboundSymbolError
from rtfs.values import Keyword

ENV = {"CHAT_KEY": "test-key"}


def make_config(tmp_path: Path, base_url: str, extra_routes: str = "", extra: str = "",
                store: str | None = None):
    text = f"""
[delegation]
default_target = "local-pure"

[delegation.static_routes]
"summarize" = {{ target = "remote-chat", fallback = "local-summarizer" }}
"ai-*" = "remote-chat"
"private-note" = "remote-chat"
{extra_routes}

[delegation.remote_providers.chat]
kind = "openai-chat"
base_url = "{base_url}"
model = "test-model"
api_key_env = "CHAT_KEY"
timeout_s = 5
cost_per_call = 0.01
health_ttl_s = 60
capabilities = ["analyze"]

[delegation.local_models.summarizer]
kind = "extractive-summarizer"
max_sentences = 1

[delegation.local_models.sentiment-rules]
kind = "sentiment-rules"
capabilities = ["sentiment", "tone", "analyze"]

[delegation.security]
sensitive = ["private-*"]

[delegation.l4]
store = "{store or 'file://' + str(tmp_path / 'state' / 'l4')}"
{extra}
"""
    return parse_config(text, base_dir=tmp_path)


def runtime(tmp_path, server, **kw):
    return Runtime(make_config(tmp_path, server.base_url, **kw), environ=ENV, out=io.StringIO())


DOC = "Delegation decides where calls run. It is fast. Caches remember decisions for later."


def test_remote_call_reaches_the_provider_and_returns_its_answer(tmp_path, chat_server):
    rt = runtime(tmp_path, chat_server)
    result = rt.run('(ai-ask "What is RTFS?")')
    assert result.value == chat_server.reply_for("test-model", "What is RTFS?")
    [request] = chat_server.completions()
    assert request.headers["authorization"] == "Bearer test-key"
    assert request.body["messages"][-1]["content"] == "What is RTFS?"
    [call] = result.calls
    assert (call.target, call.layer, call.outcome) == ("RemoteModel(chat)", "static-glob", "ok")
    assert call.cost == pytest.approx(0.01)


def test_sensitive_calls_never_reach_the_remote_provider(tmp_path, chat_server):
    rt = runtime(tmp_path, chat_server)
    with pytest.raises(HostError) as info:
        rt.run('^{:sensitive true} (ai-ask "my medical history")')
    assert isinstance(info.value.__cause__, SecurityViolation)
    with pytest.raises(HostError):
        rt.run('(private-note "my diary")')  # sensitive by policy pattern
    # a sensitive summarize has a local fallback: it runs there instead
    summary = rt.run(f'^{{:sensitive true}} (summarize "{DOC}")')
    assert summary.value in DOC and summary.calls[0].layer == "security"
    assert chat_server.completions() == []
    assert [c.outcome for c in rt.last_calls] == ["ok"]


def test_provider_outside_the_allow_list_is_never_contacted(tmp_path, chat_server):
    text = make_config_text_with_allow_list(tmp_path, chat_server.base_url)
    locked = Runtime(parse_config(text, base_dir=tmp_path), environ=ENV)
    with pytest.raises(HostError) as info:
        locked.run('(ai-ask "hello")')
    assert "allow-list" in str(info.value.__cause__)
    assert chat_server.completions() == []


def make_config_text_with_allow_list(tmp_path, base_url):
    return f"""
[delegation.static_routes]
"ai-*" = "remote-chat"
[delegation.remote_providers.chat]
kind = "openai-chat"
base_url = "{base_url}"
model = "test-model"
api_key_env = "CHAT_KEY"
[delegation.remote_providers.other]
kind = "openai-chat"
base_url = "{base_url}"
model = "test-model"
[delegation.security]
allowed_remote_providers = ["other"]
[delegation.l4]
store = "file://{tmp_path / 'state' / 'l4'}"
"""


def test_stopped_server_sends_the_call_to_the_route_fallback(tmp_path, chat_server):
    rt = runtime(tmp_path, chat_server)
    first = rt.run(f'(summarize "{DOC}")')
    assert first.value == chat_server.reply_for("test-model", DOC)
    chat_server.stop()  # the health check is still cached as fine: the call itself fails
    other = DOC + " Fallbacks keep plans running."  # DOC's answer is in L2 now
    second = rt.run(f'(summarize "{other}")')
    assert second.value in other  # the local extractive summary: one sentence of the text
    [call] = second.calls
    assert (call.target, call.layer) == ("LocalModel(summarizer)", "fallback")
    assert call.attempts and "RemoteModel(chat)" in call.attempts[0]
    assert call.cache == "-" and len(rt.plans) == 0  # a fallback is never cached as a plan


def test_unreachable_provider_without_fallback_is_reported_with_its_reason(tmp_path):
    rt = Runtime(make_config(tmp_path, "http://127.0.0.1:9/v1"), environ=ENV)
    with pytest.raises(HostError) as info:
        rt.run('(ai-ask "hello")')
    assert isinstance(info.value.__cause__, CallUnavailable)
    assert rt.last_calls[0].outcome == "unavailable"


def test_parallel_remote_calls_are_in_flight_together(tmp_path, chat_server):
    chat_server.hold(4)  # replies wait until four requests are open at once
    rt = runtime(tmp_path, chat_server)
    result = rt.run('(parallel [a (ai-ask "1")] [b (ai-ask "2")]'
                    '          [c (ai-ask "3")] [d (ai-ask "4")])')
    assert result.value == tuple(chat_server.reply_for("test-model", p) for p in "1234")
    assert chat_server.max_open == 4


def test_capability_decision_becomes_a_plan_that_the_next_runtime_restores(tmp_path,
                                                                           chat_server):
    first = runtime(tmp_path, chat_server).run('(call :tone "I love it")')
    assert first.calls[0].layer == "capability" and first.calls[0].cache == "stored"
    assert first.value[Keyword("label")] == "positive"
    second_rt = runtime(tmp_path, chat_server)
    assert second_rt.plans_restored == 1
    second = second_rt.run('(call :tone "I really love it")')
    assert second.calls[0].layer == "l1-cache" and second.calls[0].cache == "hit"


def test_metadata_that_changes_the_decision_is_not_overridden_by_a_cached_plan(tmp_path,
                                                                                chat_server):
    rt = runtime(tmp_path, chat_server)
    low = rt.run('^{:complexity :low} (call :analyze "fine")')
    assert (low.calls[0].layer, low.calls[0].cache) == ("metadata", "stored")
    assert low.calls[0].target == "LocalModel(sentiment-rules)"
    again = rt.run('^{:complexity :low} (call :analyze "fine again")')
    assert (again.calls[0].layer, again.calls[0].cache) == ("l1-cache", "hit")
    # same symbol, same argument types, different metadata: a different plan key
    high = rt.run('^{:complexity :high :confidence 0.2} (call :analyze "fine")')
    assert (high.calls[0].layer, high.calls[0].target) == ("metadata", "RemoteModel(chat)")
    assert high.value == chat_server.reply_for("test-model", "fine")


def test_l4_publish_then_hit_across_two_runtimes_sharing_a_store(tmp_path, chat_server):
    text = "(defn triple [x:int] :int (* 3 x))"
    publisher = runtime(tmp_path, chat_server)
    published = publisher.run(text)
    assert [f.origin for f in published.functions] == ["compiled+published"]
    # another runtime with the same source skips the compiler
    same_source = runtime(tmp_path, chat_server).run(text + " (triple 4)")
    assert same_source.value == 12 and [f.origin for f in same_source.functions] == ["l4"]
    # a runtime without the source finds the function by name and runs verified bytecode
    caller = runtime(tmp_path, chat_server)
    result = caller.run("(triple 5)")
    assert result.value == 15
    [call] = result.calls
    assert call.layer == "l4" and call.target.startswith("L4CacheHit(")
    again = caller.run("(triple 6)")  # the same runtime calls it again
    assert again.value == 18 and again.calls[0].layer == "l4"


def test_published_function_brings_its_dependencies_by_source_hash(tmp_path, chat_server):
    runtime(tmp_path, chat_server).run(
        "(defn inc2 [x] (+ x 2)) (defn twice-inc2 [x] (inc2 (inc2 x)))")
    caller = runtime(tmp_path, chat_server)
    assert caller.run("(twice-inc2 1)").value == 5
    assert "inc2" in caller.vm.globals  # bound by its source hash, not looked up by name


def test_entries_signed_by_an_untrusted_key_never_run(tmp_path, chat_server):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from storage.signing import save_private_key

    store = "file://" + str(tmp_path / "shared" / "l4")
    save_private_key(Ed25519PrivateKey.generate(), tmp_path / "stranger.pem")
    stranger = Runtime(make_config(tmp_path, chat_server.base_url, store=store,
                                   extra='signing_key = "stranger.pem"'), environ=ENV)
    stranger.run("(defn evil [x] (str \"pwned \" x))")
    reader = Runtime(make_config(tmp_path, chat_server.base_url, store=store), environ=ENV)
    with pytest.raises(UnboundSymbolError, match="evil"):
        reader.run("(evil 1)")
    stats = reader.library.index.stats()
    assert stats.hits == 0 and stats.rejected.get("untrusted_key", 0) >= 1


def test_no_config_at_all_runs_offline(tmp_path, monkeypatch):
    import delegation

    monkeypatch.chdir(tmp_path)
    rt = delegation.Runtime(default_config(), environ={})
    result = rt.run('[(+ 1 2 3) (:label (sentiment "I love this!")) (summarize "One. Two.")]')
    assert result.value[:2] == (6, "positive")
    assert {c.symbol for c in result.calls} == {"sentiment", "summarize"}


def test_decide_explains_without_running(tmp_path, chat_server):
    rt = runtime(tmp_path, chat_server)
    decision = rt.decide("ai-anything")
    assert str(decision.target) == "RemoteModel(chat)" and decision.layer == "static-glob"
    assert rt.decide("private-note").target is None
    assert chat_server.completions() == []


def test_a_half_open_circuit_lets_exactly_one_trial_call_reach_the_provider(tmp_path,
                                                                          chat_server):
    """Production path: many concurrent calls when the reset timeout has passed; one goes
    to the recovering provider, the rest run on the route's fallback."""
    import threading
    from dataclasses import replace

    from delegation.l2.config import L2Config
    from delegation.testing import FakeClock

    clock = FakeClock(100.0)
    # L2 off: the same document again would be answered from L2 and never reach the breaker
    config = replace(make_config(tmp_path, chat_server.base_url), l2=L2Config(enabled=False))
    rt = Runtime(config, environ=ENV, out=io.StringIO(), monotonic=clock)
    rt.route_call("summarize", (DOC,))  # healthy (the health check is cached for 60 s)
    chat_server.fail_with(500)
    for _ in range(3):  # three failures open the circuit; each call ran on the fallback
        rt.route_call("summarize", (DOC,))
    assert rt.health.breaker(RemoteModel("chat")).state is CircuitState.OPEN
    failing_requests = len(chat_server.completions())
    chat_server.clear_failure()
    chat_server.set_delay(0.5)  # the trial is still in flight while the others arrive
    clock.advance(31)  # past the reset timeout: half-open
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(rt.route_call("summarize",
                                                                             (DOC,))))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(chat_server.completions()) - failing_requests == 1
    assert len(results) == 6
    assert rt.health.breaker(RemoteModel("chat")).state is CircuitState.CLOSED


@pytest.mark.parametrize("name", ["l1-plans.msgpack", "outcomes.msgpack"])
@pytest.mark.parametrize("content", [b"\x00garbage", b"", b"\x93\x01\xa3bad\x90"])
def test_a_corrupt_state_file_is_set_aside_and_the_run_goes_on(tmp_path, chat_server,
                                                               name, content):
    config = make_config(tmp_path, chat_server.base_url)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    (config.state_dir / name).write_bytes(content)
    warnings: list[str] = []
    rt = Runtime(config, environ=ENV, out=io.StringIO(), warn=warnings.append)
    assert rt.run("(+ 1 2)").value == 3
    [warning] = warnings
    assert name in warning and "moved to" in warning
    aside = [p for p in config.state_dir.iterdir() if p.name.startswith(f"{name}.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes() == content
    Runtime(config, environ=ENV, out=io.StringIO(), warn=warnings.append).run("(+ 1 2)")
    assert len(warnings) == 1  # the next run starts cleanly from what this one saved


def test_state_that_cannot_be_saved_is_a_warning_not_a_failure(tmp_path, chat_server):
    config = make_config(tmp_path, chat_server.base_url)
    config.state_dir.parent.mkdir(parents=True, exist_ok=True)
    config.state_dir.write_text("a file where the state directory should be")
    warnings: list[str] = []
    rt = Runtime(config, environ=ENV, out=io.StringIO(), warn=warnings.append)
    assert rt.run("(+ 1 2)").value == 3
    assert any("not saved" in w for w in warnings)


def test_a_name_not_yet_published_is_asked_again_after_the_ttl(tmp_path, chat_server):
    from delegation.codelib import CodeLibrary
    from delegation.testing import FakeClock
    from storage import open_l4

    clock = FakeClock(0.0)
    config = make_config(tmp_path, chat_server.base_url)
    index = open_l4(config.l4.store_uri, state_dir=config.state_dir)  # the same node's key
    caller = Runtime(config, environ=ENV,
                     library=CodeLibrary(index, missing_ttl_s=30, timer=clock))
    with pytest.raises(UnboundSymbolError):
        caller.run("(later 1)")
    runtime(tmp_path, chat_server).run("(defn later [x] (* 10 x))")  # another node publishes
    with pytest.raises(UnboundSymbolError):  # "not published" is still remembered
        caller.run("(later 2)")
    clock.advance(31)
    assert caller.run("(later 3)").value == 30


def test_a_forward_reference_is_part_of_the_source_hash(tmp_path, chat_server):
    """f calls g, defined after it: f's source hash covers g's (Merkle), so a node without
    the source gets g with f, and a different g makes a different f."""
    program = "(defn f [x] (g x))\n(defn g [x] (* 2 x))\n"
    publisher = runtime(tmp_path, chat_server)
    publisher.run(program)
    caller = runtime(tmp_path, chat_server)
    assert caller.run("(f 5)").value == 10  # g came by f's dependency, not by name
    other = runtime(tmp_path, chat_server).run(program.replace("(* 2 x)", "(* 3 x)") + "(f 5)")
    assert other.value == 15
    origins = {f.name: f.origin for f in other.functions}
    assert origins == {"f": "compiled+published", "g": "compiled+published"}


def test_run_prefetches_every_name_of_the_program_before_its_first_call(tmp_path):
    from delegation.l1 import L1PlanCache

    events: list[tuple[str, object]] = []

    class RecordingStore(L1PlanCache):
        def prefetch(self, agents):
            events.append(("prefetch", sorted(agents)))

        def get(self, agent, task):
            events.append(("get", agent))
            return super().get(agent, task)

    config = default_config(tmp_path, state_dir=tmp_path / "state")
    runtime = Runtime(config, plans=RecordingStore())
    runtime.run('(defn twice [x] (* 2 x)) (sentiment "a fine day") (call :tone "bad")')
    assert events[0][0] == "prefetch"
    assert {"twice", "sentiment", "tone", "x"} <= set(events[0][1])
    assert ("get", "tone") in events[1:]  # the capability call consults L1 after the prefetch


def test_a_run_stops_at_its_deadline(tmp_path, chat_server):
    """The issue's runaway step: minutes without a deadline, stopped at 0.2 s with one."""
    from rtfs.deadline import Deadline
    from rtfs.errors import DeadlineExceeded

    rt = runtime(tmp_path, chat_server)
    runaway = "(reduce + (map (fn [i] (reduce + (range 10000000))) (range 1000)))"
    with pytest.raises(DeadlineExceeded):
        rt.run(runaway, deadline=Deadline.after(0.2))
    assert rt.run("(+ 1 2)").value == 3  # the runtime is usable afterwards


def test_a_routed_call_waits_on_a_provider_no_longer_than_its_deadline(tmp_path, chat_server):
    import time as clock

    from rtfs.deadline import Deadline
    from rtfs.errors import DeadlineExceeded

    rt = runtime(tmp_path, chat_server)
    rt.route_call("ai-ask", ("warm",))  # health checked and cached
    chat_server.set_delay(30)  # the provider's own timeout is 5 s
    started = clock.monotonic()
    with pytest.raises(DeadlineExceeded):
        rt.route_call("summarize", (DOC,), deadline=Deadline.after(0.3))
    # neither the 30 s answer nor the 5 s provider timeout was waited for (a sanity bound)
    assert clock.monotonic() - started < 4
