"""Remote RTFS execution: the plain core (`cluster.execute.StepRunner`, no Ray) and steps as
Ray tasks on the shared single-node Ray (`cluster.steptasks`). Placement on a node with a
given resource is in `test_execute_nodes.py` (a multi-node cluster)."""

from __future__ import annotations

import gc
import json
import pickle
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import ray

from cluster.execute import StepRunner
from cluster.steps import (
    STEP_ERRORS,
    BadStepRequest,
    CodeNotFound,
    OutputTooLarge,
    StepLimits,
    StepReply,
    StepRequest,
    StepSettings,
    UntrustedCode,
    parse_request,
)
from cluster.steptasks import (
    TASK_ERRORS,
    RayStepExecutor,
    StepTimeout,
    StepUnavailable,
    publish_policy,
)
from delegation.config import parse_config
from delegation.errors import (
    ConfigError,
    ProviderError,
    ProviderInputError,
    ProviderTimeout,
    SecurityViolation,
)
from delegation.runtime import Runtime
from rtfs.errors import HostError
from rtfs.values import Keyword, Map
from tests.cluster.conftest import RaySession
from tests.cluster.publishing import Fleet

RUNAWAY = "(reduce + (map (fn [i] (reduce + (range 10000000))) (range 1000)))"
ADD = "(defn add3 [a b c] (+ a b c))"


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    return Fleet(tmp_path, sensitive=("private-*",))


@pytest.fixture
def runner(fleet: Fleet) -> StepRunner:
    return StepRunner(fleet.node_config(), origin="test", node="node-1",
                      limits=StepLimits(max_value_chars=200, max_output_chars=10))


def run(runner: StepRunner, source: str, **kwargs: object) -> StepReply:
    return runner.run(StepRequest(source, **kwargs))  # type: ignore[arg-type]


def test_a_step_answers_its_printed_value_and_output(runner: StepRunner) -> None:
    reply = run(runner, '(println "hi") (defn sq [x] (* x x)) {:n (sq 12) :v [1 "a"]}')
    assert (reply.ok, reply.status, reply.value) == (True, 200, '{:n 144 :v [1 "a"]}')
    assert reply.output == "hi\n" and reply.node == "node-1"
    assert reply.to_json() == {"ok": True, "value": reply.value, "output": "hi\n"}


def test_a_runaway_step_ends_at_its_deadline(runner: StepRunner) -> None:
    reply = run(runner, RUNAWAY, deadline_s=0.5)
    assert (reply.ok, reply.error_type, reply.status) == (False, "DeadlineExceeded", 504)
    assert "deadline" in reply.message


def test_printing_a_huge_value_counts_against_the_deadline(fleet: Fleet) -> None:
    runner = StepRunner(fleet.node_config(), limits=StepLimits(max_value_chars=1 << 30))
    reply = run(runner, "(range 3000000)", deadline_s=0.3)
    assert (reply.error_type, reply.status) == ("DeadlineExceeded", 504)


def test_the_value_and_the_output_are_bounded(runner: StepRunner) -> None:
    reply = run(runner, "(vec (range 1000))")
    assert (reply.error_type, reply.status) == ("OutputTooLarge", 422)
    assert "200 characters" in reply.message
    printed = run(runner, '(println "0123456789abcdef") 1')
    assert printed.ok and printed.output == "0123456789 ..."


@pytest.mark.parametrize("source, refused", [
    ("(defn private-key [] 42) (private-key)", "private-key is sensitive"),
    ('(tone "I love it")', "LocalModel(sentiment-rules) is this node's"),
    ('(call :sentiment "I love it")', "LocalModel(sentiment-rules) is this node's"),
])
def test_this_nodes_sensitive_functions_and_models_are_refused(runner: StepRunner,
                                                               source: str,
                                                               refused: str) -> None:
    reply = run(runner, source)
    assert (reply.ok, reply.error_type, reply.status) == (False, "SecurityViolation", 403)
    assert refused in reply.message


@pytest.mark.parametrize("source, kind, status", [
    ("(+ 1", "RtfsSyntaxError", 400),
    ("(/ 1 0)", "DivisionByZeroError", 422),
    ("(nope 1)", "UnboundSymbolError", 422),
])
def test_rtfs_errors_are_typed(runner: StepRunner, source: str, kind: str, status: int) -> None:
    reply = run(runner, source)
    assert (reply.ok, reply.error_type, reply.status) == (False, kind, status)
    assert reply.to_json()["error"]["type"] == kind


def test_a_published_function_signed_by_a_trusted_key_runs(fleet: Fleet,
                                                           runner: StepRunner) -> None:
    add = fleet.publish(ADD, "add3", fleet.trusted)
    reply = runner.run(StepRequest(interface=add.interface, blob=add.blob,
                                   args=("1", "(* 2 5)", "[3]")))
    assert (reply.ok, reply.error_type) == (False, "RtfsTypeError")  # + of a vector
    reply = runner.run(StepRequest(interface=add.interface, blob=add.blob,
                                   args=("1", "(* 2 5)", "100")))
    assert (reply.ok, reply.value) == (True, "111")


@pytest.mark.parametrize("key, reason", [("untrusted", "does not trust"),
                                         ("revoked", "has revoked")])
def test_a_published_function_signed_by_another_key_is_refused(fleet: Fleet, runner: StepRunner,
                                                               key: str, reason: str) -> None:
    mul = fleet.publish(f"(defn mul-{key} [a b] (* a b))", f"mul-{key}", getattr(fleet, key))
    reply = runner.run(StepRequest(interface=mul.interface, blob=mul.blob, args=("6", "7")))
    assert (reply.ok, reply.error_type, reply.status) == (False, "UntrustedCode", 403)
    assert reason in reply.message and mul.blob in reply.message


def test_an_unknown_version_and_a_sensitive_function_are_refused(fleet: Fleet,
                                                                 runner: StepRunner) -> None:
    add = fleet.publish(ADD, "add3", fleet.trusted)
    other_blob = "0" * 32
    reply = runner.run(StepRequest(interface=add.interface, blob=other_blob, args=("1",)))
    assert (reply.error_type, reply.status) == ("CodeNotFound", 404)
    secret = fleet.publish("(defn private-sum [a] (+ a 1))", "private-sum", fleet.trusted)
    reply = runner.run(StepRequest(interface=secret.interface, blob=secret.blob, args=("1",)))
    assert (reply.error_type, reply.status) == ("SecurityViolation", 403)


def test_a_step_calls_functions_published_after_the_node_started(fleet: Fleet,
                                                                 runner: StepRunner) -> None:
    fleet.publish("(defn later-trusted [] 7)", "later-trusted", fleet.trusted)
    fleet.publish("(defn later-untrusted [] 8)", "later-untrusted", fleet.untrusted)
    assert run(runner, "(later-trusted)").value == "7"
    reply = run(runner, "(later-untrusted)")
    assert (reply.error_type, reply.status) == ("UnboundSymbolError", 422)


def test_arguments_are_one_form_each(fleet: Fleet, runner: StepRunner) -> None:
    add = fleet.publish(ADD, "add3", fleet.trusted)
    reply = runner.run(StepRequest(interface=add.interface, blob=add.blob,
                                   args=("1", "2] (println \"x\") [", "3")))
    assert reply.error_type in ("BadStepRequest", "RtfsSyntaxError") and reply.status == 400


@pytest.mark.parametrize("body, reason", [
    (b"{", "not JSON"),
    (b"\xff", "not UTF-8"),
    (b"[1]", "JSON object"),
    (b"[" * 100_000, "nested too deeply"),
    (b'{"source": "1", "deadline": 5}', "unknown key 'deadline'"),
    (b'{"source": 1}', "'source' must be a string"),
    (b'{}', "either 'source' or"),
    (b'{"source": "1", "interface": "' + b"a" * 32 + b'"}', "either 'source' or"),
    (b'{"interface": "xyz", "blob": "' + b"a" * 32 + b'"}', "'interface' must be 32"),
    (b'{"interface": "' + b"a" * 32 + b'", "blob": "' + b"a" * 32 + b'", "args": [1]}',
     "'args' must be a list of strings"),
    (b'{"source": "1", "args": ["2"]}', "'args' go with"),
    (b'{"source": "1", "deadline_ms": 0}', "'deadline_ms' must be a positive integer"),
    (b'{"source": "1", "deadline_ms": true}', "'deadline_ms' must be a positive integer"),
    (b'{"source": "1", "deadline_ms": 99999999}', "'deadline_ms' must be from 1 to 600000"),
])
def test_malformed_requests_name_the_problem(body: bytes, reason: str) -> None:
    with pytest.raises(BadStepRequest) as info:
        parse_request(body)
    assert reason in str(info.value)
    assert isinstance(info.value, ValueError)


def test_a_well_formed_request() -> None:
    assert parse_request(b'{"source": "(+ 1 2)", "deadline_ms": 250}') == StepRequest(
        "(+ 1 2)", deadline_s=0.25)
    iface, blob = "a" * 32, "b" * 32
    assert parse_request(f'{{"interface": "{iface}", "blob": "{blob}", "args": ["1"]}}'
                         .encode()) == StepRequest(None, iface, blob, ("1",))


def test_every_step_error_pickles_and_keeps_its_type() -> None:
    samples = [BadStepRequest("r"), OutputTooLarge(5), UntrustedCode("w", "r"),
               CodeNotFound("w", "r")]
    assert {type(s) for s in samples} == set(STEP_ERRORS)
    for error in samples:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)


# --- steps as Ray tasks (the shared single-node Ray) ---------------------------------------

@pytest.fixture
def tasks(fleet: Fleet, ray_session: RaySession) -> Iterator[RayStepExecutor]:
    namespace = f"steps-{uuid.uuid4().hex[:8]}"
    settings = StepSettings(fleet.config_text(), "<test>", str(fleet.root),
                            str(fleet.root / "node-state"), StepLimits(max_value_chars=200))
    policy = publish_policy(settings, namespace)
    yield RayStepExecutor(namespace, grace_s=60.0)
    ray.kill(policy, no_restart=True)


def test_a_step_runs_as_a_ray_task_under_the_fleets_policy(tasks: RayStepExecutor) -> None:
    reply = tasks.run(StepRequest("(reduce + (range 10))"))
    assert (reply.ok, reply.value) == (True, "45")
    assert reply.node == ray.get_runtime_context().get_node_id()
    refused = tasks.run(StepRequest("(defn private-x [] 1) (private-x)"))
    assert (refused.error_type, refused.status) == ("SecurityViolation", 403)
    too_big = tasks.run(StepRequest("(vec (range 1000))"))
    assert too_big.error_type == "OutputTooLarge"  # the fleet's limits, not the caller's


def test_a_runaway_task_ends_at_its_deadline(tasks: RayStepExecutor) -> None:
    reply = tasks.run(StepRequest(RUNAWAY, deadline_s=1.0))
    # the VM stopped it (a caller-side timeout would raise StepTimeout instead)
    assert (reply.ok, reply.error_type, reply.status) == (False, "DeadlineExceeded", 504)


def test_l4_references_are_verified_by_the_executing_node(fleet: Fleet,
                                                          tasks: RayStepExecutor) -> None:
    good = fleet.publish("(defn inc-trusted [x] (+ x 1))", "inc-trusted", fleet.trusted)
    bad = fleet.publish("(defn inc-untrusted [x] (+ x 1))", "inc-untrusted", fleet.untrusted)
    ran = tasks.run(StepRequest(interface=good.interface, blob=good.blob, args=("41",)))
    assert (ran.ok, ran.value) == (True, "42")
    refused = tasks.run(StepRequest(interface=bad.interface, blob=bad.blob, args=("41",)))
    assert (refused.error_type, refused.status) == ("UntrustedCode", 403)
    assert "does not trust" in refused.message


def test_a_resource_no_node_offers_fails_at_once(tasks: RayStepExecutor) -> None:
    nowhere = RayStepExecutor(tasks.namespace, resources={"no-such-node": 0.001})
    with pytest.raises(StepUnavailable, match="no alive node offers") as info:
        nowhere.run(StepRequest("1"))
    assert isinstance(info.value, ConnectionError) and not isinstance(info.value, StepTimeout)


def test_a_namespace_without_a_fleet_has_no_policy(ray_session: RaySession) -> None:
    with pytest.raises(StepUnavailable, match="no step policy"):
        RayStepExecutor(f"nothing-{uuid.uuid4().hex[:8]}")


def test_task_errors_pickle_and_keep_their_types() -> None:
    for error in (StepUnavailable("w", "r"), StepTimeout("w", "r")):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
    assert set(TASK_ERRORS) == {StepUnavailable, StepTimeout}
    assert issubclass(StepTimeout, TimeoutError) and issubclass(StepTimeout, StepUnavailable)


def test_serve_keeps_the_policy_it_publishes_until_it_stops(fleet: Fleet,
                                                             ray_session: RaySession) -> None:
    from cluster.serve import start_steps

    namespace = f"serve-{uuid.uuid4().hex[:8]}"
    settings = StepSettings(fleet.config_text(), "<test>", str(fleet.root),
                            str(fleet.root / "node-state"))
    started: list[Callable[[], None]] = []
    start_steps(namespace, settings, None, started)
    gc.collect()  # nothing but serve's stop step holds the policy actor's handle
    assert RayStepExecutor(namespace).run(StepRequest("(* 6 7)")).value == "42"
    for stop in reversed(started):
        stop()
    with pytest.raises(StepUnavailable, match="no step policy"):
        RayStepExecutor(namespace)


# --- the ray-rtfs provider: remote-rtfs.execute inside a fleet ---------------------------------

def fleet_runtime(tmp_path: Path, namespace: str, extra: str = "") -> Runtime:
    config = parse_config(f"""
[delegation.remote_providers.gpu]
kind = "ray-rtfs"
namespace = "{namespace}"
timeout_s = 60
{extra}
""", base_dir=tmp_path, state_dir=tmp_path / "caller-state")
    return Runtime(config)


def test_a_plan_calls_remote_rtfs_execute_as_a_ray_task(fleet: Fleet, tasks: RayStepExecutor,
                                                        tmp_path: Path) -> None:
    runtime = fleet_runtime(tmp_path, tasks.namespace)
    result = runtime.run('(call :remote-rtfs.execute "{:n (* 6 7) :xs (vec (range 3))}")')
    assert result.value == Map([(Keyword("n"), 42), (Keyword("xs"), (0, 1, 2))])
    [record] = result.calls
    assert (record.target, record.layer, record.outcome) == ("RemoteModel(gpu)", "capability",
                                                             "ok")
    good = fleet.publish("(defn triple-trusted [x] (* 3 x))", "triple-trusted", fleet.trusted)
    assert runtime.run(f'(call :remote-rtfs.execute "" {{:interface "{good.interface}" '
                       f':blob "{good.blob}" :args [14]}})').value == 42


def test_the_ray_providers_errors(fleet: Fleet, tasks: RayStepExecutor, tmp_path: Path) -> None:
    runtime = fleet_runtime(tmp_path, tasks.namespace)
    cases = [
        (f"(call :remote-rtfs.execute {json.dumps(RUNAWAY)} {{:deadline-ms 500}})",
         ProviderTimeout, "DeadlineExceeded"),
        ('(call :remote-rtfs.execute "(defn private-y [] 1) (private-y)")', ProviderError,
         "SecurityViolation"),
        ('(call :remote-rtfs.execute "(+ 1")', ProviderInputError, "RtfsSyntaxError"),
    ]
    for program, kind, text in cases:
        with pytest.raises(HostError) as info:
            runtime.run(program)
        assert isinstance(info.value.__cause__, kind) and text in str(info.value.__cause__)
    with pytest.raises(HostError) as info:
        runtime.run('^{:sensitive true} (call :remote-rtfs.execute "(+ 1 2)")')
    assert isinstance(info.value.__cause__, SecurityViolation)
    [record] = runtime.last_calls
    assert record.outcome == "refused" and record.attempts == []  # nothing was sent


def test_a_ray_provider_without_a_fleet_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "d.toml").write_text('[delegation.remote_providers.gpu]\nkind = "ray-rtfs"\n')
    (tmp_path / "p.rtfs").write_text('(call :remote-rtfs.execute "(+ 1 2)")')
    done = subprocess.run([sys.executable, "-m", "delegation", "run", str(tmp_path / "p.rtfs"),
                           "--config", str(tmp_path / "d.toml"), "--state-dir",
                           str(tmp_path / "s")], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 1 and "not connected to a fleet" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("line, key", [
    ('resources = "gpu-node"', "delegation.remote_providers.gpu.resources"),
    ('resource = ["gpu-node"]', "delegation.remote_providers.gpu.resource"),
    ("namespace = 3", "delegation.remote_providers.gpu.namespace"),
])
def test_ray_rtfs_keys_are_checked_with_key_and_line(line: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f'[delegation.remote_providers.gpu]\nkind = "ray-rtfs"\n{line}\n',
                     source="d.toml")
    assert (info.value.key_path, info.value.line) == (key, 3)
