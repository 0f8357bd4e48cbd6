"""Remote RTFS execution over HTTP: the Ray Serve endpoint on the shared Ray (bound to
127.0.0.1), its token, bounds and errors, and the `remote-rtfs` provider against it (its
conformance with `ModelProviderTests`, and inside a plan)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from cluster import http
from cluster.steps import MAX_BODY_BYTES, StepLimits, StepSettings
from delegation.config import parse_config
from delegation.errors import ProviderError, ProviderInputError, ProviderTimeout
from delegation.providers.base import ModelProvider, ModelResult
from delegation.providers.remote_rtfs import RemoteRTFSProvider
from delegation.runtime import Runtime
from delegation.testing import ModelProviderTests
from rtfs.errors import HostError
from rtfs.forms import form_to_value
from rtfs.reader import read
from rtfs.values import Keyword, Map
from tests.cluster.conftest import (
    ensure_ray,
    readme_env,
    require_loopback_listeners,
    run_readme_script,
)
from tests.cluster.publishing import Fleet

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-0123456789abcdef"
RUNAWAY = "(reduce + (map (fn [i] (reduce + (range 10000000))) (range 1000)))"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return Fleet(Path(tmp_path_factory.mktemp("http")), sensitive=("private-*",))


@pytest.fixture(scope="module")
def url(fleet: Fleet) -> Iterator[str]:
    ensure_ray()
    settings = StepSettings(fleet.config_text(), "<test>", str(fleet.root),
                            str(fleet.root / "node-state"), StepLimits(max_value_chars=1000))
    options = http.HttpOptions("127.0.0.1", 0, hashlib.sha256(TOKEN.encode()).digest())
    endpoint = http.start(settings, options)
    try:
        require_loopback_listeners(os.getpid(), "Ray Serve")
        yield endpoint.url
    finally:
        endpoint.stop()


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=120.0) as made:
        yield made


def post(client: httpx.Client, url: str, body: Any, token: str | None = TOKEN,
         **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(url + "/execute", content=content, headers=headers, **kwargs)


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    assert body["ok"] is False
    return response.status_code, body["error"]["type"], body["error"]["message"]


# --- the endpoint ---------------------------------------------------------------------------

def test_a_step_answers_its_printed_value(url: str, client: httpx.Client) -> None:
    response = post(client, url, {"source": '(println "hello") {:sum (+ 1 2) :v [1 "x"]}'})
    assert response.status_code == 200
    assert response.json() == {"ok": True, "value": '{:sum 3 :v [1 "x"]}', "output": "hello\n"}


@pytest.mark.parametrize("token", [None, "wrong-token-0123456789", "x"])
def test_without_the_right_token_nothing_runs(url: str, client: httpx.Client,
                                              token: str | None) -> None:
    response = post(client, url, {"source": "(+ 1 2)"}, token=token)
    assert error_of(response)[:2] == (401, "Unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    basic = client.post(url + "/execute", content='{"source": "1"}',
                        headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401


def test_healthz_answers_probes_and_refuses_a_wrong_token(url: str,
                                                          client: httpx.Client) -> None:
    assert client.get(url + "/healthz").json() == {"ok": True}
    right = client.get(url + "/healthz", headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200
    wrong = client.get(url + "/healthz", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


def test_a_body_over_one_mebibyte_is_refused_unread(url: str, client: httpx.Client) -> None:
    big = json.dumps({"source": "1", "pad": "x" * MAX_BODY_BYTES})
    assert error_of(post(client, url, big))[:2] == (413, "PayloadTooLarge")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"source": "'
        for _ in range(20):
            yield b"1" * 65536
        yield b'"}'

    chunked = client.post(url + "/execute", content=chunks(),
                          headers={"Authorization": f"Bearer {TOKEN}"})
    assert "content-length" not in chunked.request.headers
    assert error_of(chunked)[:2] == (413, "PayloadTooLarge")


@pytest.mark.parametrize("body, reason", [
    ("{not json", "not JSON"),
    ({"source": "1", "deadline": 5}, "unknown key 'deadline'"),
    ({"source": ["1"]}, "'source' must be a string"),
    ({"deadline_ms": 10}, "either 'source' or"),
    ({"source": "1", "deadline_ms": -1}, "'deadline_ms' must be a positive integer"),
    ({"interface": "zz", "blob": "00" * 16}, "'interface' must be 32"),
    ({"source": "(+ 1"}, "unclosed '('"),
])
def test_a_malformed_request_is_400_naming_the_problem(url: str, client: httpx.Client,
                                                       body: Any, reason: str) -> None:
    status, _, message = error_of(post(client, url, body))
    assert status == 400 and reason in message


def test_a_runaway_step_is_504_at_its_deadline(url: str, client: httpx.Client) -> None:
    response = post(client, url, {"source": RUNAWAY, "deadline_ms": 1000})
    assert error_of(response)[:2] == (504, "DeadlineExceeded")


def test_a_step_from_http_may_not_call_a_sensitive_function_or_a_model(
        url: str, client: httpx.Client) -> None:
    status, kind, message = error_of(post(
        client, url, {"source": "(defn private-notes [] \"secret\") (private-notes)"}))
    assert (status, kind) == (403, "SecurityViolation")
    assert "private-notes is sensitive" in message
    status, kind, message = error_of(post(client, url, {"source": '(tone "great")'}))
    assert (status, kind) == (403, "SecurityViolation") and "this node's" in message


def test_rtfs_errors_and_large_values(url: str, client: httpx.Client) -> None:
    assert error_of(post(client, url, {"source": "(/ 1 0)"}))[:2] == (
        422, "DivisionByZeroError")
    assert error_of(post(client, url, {"source": "(vec (range 2000))"}))[:2] == (
        422, "OutputTooLarge")


def test_unknown_paths_and_methods(url: str, client: httpx.Client) -> None:
    assert client.get(url + "/nothing").status_code == 404
    assert client.get(url + "/execute").status_code == 405
    assert client.post(url + "/healthz").status_code == 405


def test_concurrent_requests_each_get_their_own_answer(url: str, client: httpx.Client) -> None:
    def square(n: int) -> httpx.Response:
        return post(client, url, {"source": f"(reduce + (map (fn [x] (* x x)) (range {n})))"})

    def runaway(_: int) -> httpx.Response:
        return post(client, url, {"source": RUNAWAY, "deadline_ms": 3000})

    with ThreadPoolExecutor(max_workers=12) as pool:
        slow = [pool.submit(runaway, i) for i in range(2)]
        fast = {n: pool.submit(square, n) for n in range(100, 124)}
        for n, future in fast.items():
            response = future.result()
            assert response.status_code == 200
            assert response.json()["value"] == str(sum(x * x for x in range(n)))
        assert [error_of(f.result())[1] for f in slow] == ["DeadlineExceeded"] * 2


def test_l4_references_over_http(fleet: Fleet, url: str, client: httpx.Client) -> None:
    good = fleet.publish("(defn scale-trusted [k xs] (map (fn [x] (* k x)) xs))",
                         "scale-trusted", fleet.trusted)
    ran = post(client, url, {"interface": good.interface, "blob": good.blob,
                             "args": ["3", "[1 2 3]"]})
    assert ran.json() == {"ok": True, "value": "[3 6 9]"}
    bad = fleet.publish("(defn scale-untrusted [k x] (* k x))", "scale-untrusted",
                        fleet.untrusted)
    status, kind, message = error_of(post(client, url, {
        "interface": bad.interface, "blob": bad.blob, "args": ["3", "4"]}))
    assert (status, kind) == (403, "UntrustedCode") and "does not trust" in message


# --- the remote-rtfs provider against the endpoint ------------------------------------------

class TestRemoteRTFSProvider(ModelProviderTests):
    """The conformance suite; each answer is checked against this process's own VM."""

    prompts = ("(+ 1 2)", '(str "a" "b")', "(vec (map inc [1 2 3]))", "{:k [1 2]}", "nil")

    @pytest.fixture(autouse=True)
    def _endpoint(self, url: str) -> None:
        self.url = url

    def make_provider(self, timer: Callable[[], float] = time.perf_counter) -> ModelProvider:
        return RemoteRTFSProvider("gpu", endpoint=self.url, token=TOKEN, timeout_s=60.0,
                                  timer=timer)

    def check_answer(self, prompt: str, result: ModelResult) -> None:
        local = Runtime(read_only=True).run(prompt).value
        [form] = read(result.text)
        assert form_to_value(form) == local
        from delegation.convert import to_rtfs

        assert to_rtfs(result.value) == local


def plan_runtime(url: str, tmp_path: Path, token: str = TOKEN) -> Runtime:
    config = parse_config(f"""
[delegation.remote_providers.gpu]
kind = "remote-rtfs"
endpoint = "{url}"
auth_token_env = "GPU_TOKEN"
timeout_s = 30
""", base_dir=tmp_path, state_dir=tmp_path / "state")
    return Runtime(config, environ={"GPU_TOKEN": token})


def test_a_plan_runs_a_step_remotely_and_gets_an_rtfs_value(url: str, tmp_path: Path) -> None:
    runtime = plan_runtime(url, tmp_path)
    result = runtime.run('(let [r (call :remote-rtfs.execute "{:n (* 6 7) :v [1 2]}")] '
                         "[(get r :n) (count (get r :v))])")
    assert result.value == (42, 2)
    [record] = result.calls
    assert (record.target, record.layer, record.outcome) == ("RemoteModel(gpu)", "capability",
                                                             "ok")
    assert runtime.run('(call :remote-rtfs.execute "nil")').value is None
    assert runtime.run('(call :remote-rtfs.execute "{:a 1}")').value == Map(
        [(Keyword("a"), 1)])


def test_a_sensitive_call_never_reaches_the_endpoint(url: str, tmp_path: Path) -> None:
    runtime = plan_runtime(url, tmp_path)
    with pytest.raises(HostError) as info:
        runtime.run('^{:sensitive true} (call :remote-rtfs.execute "(+ 1 2)")')
    assert "refused" in str(info.value)
    [record] = runtime.last_calls
    assert record.outcome == "refused" and record.attempts == []


def test_the_providers_errors(url: str) -> None:
    provider = RemoteRTFSProvider("gpu", endpoint=url, token=TOKEN, timeout_s=60.0)
    with pytest.raises(ProviderTimeout, match="DeadlineExceeded"):
        provider.infer(RUNAWAY, deadline_ms=1000)
    with pytest.raises(ProviderInputError, match="RtfsSyntaxError"):
        provider.infer("(+ 1")
    with pytest.raises(ProviderError) as info:
        provider.infer('(defn private-x [] 1) (private-x)')
    assert info.value.status == 403 and "SecurityViolation" in str(info.value)
    wrong = RemoteRTFSProvider("gpu", endpoint=url, token="not-the-token-at-all")
    assert not wrong.health().ok
    with pytest.raises(ProviderError) as info:
        wrong.infer("(+ 1 2)")
    assert info.value.status == 401
    assert provider.health().ok


def test_the_call_deadline_bounds_the_remote_step(url: str, tmp_path: Path) -> None:
    from rtfs.deadline import Deadline

    runtime = plan_runtime(url, tmp_path)  # timeout_s 30: the run's deadline is shorter
    with pytest.raises(HostError) as info:
        runtime.run(f"(call :remote-rtfs.execute {json.dumps(RUNAWAY)})",
                    deadline=Deadline.after(1.5))
    cause = info.value.__cause__
    # the endpoint stopped the step at what the run had left (504), not after 30 s
    assert isinstance(cause, ProviderTimeout) and "HTTP 504: DeadlineExceeded" in str(cause)


# --- the command line -----------------------------------------------------------------------

@pytest.mark.parametrize("env, message", [
    ({}, "$RTFS_HTTP_TOKEN is not set"),
    ({"RTFS_HTTP_TOKEN": "short"}, "shorter than 16 characters"),
])
def test_serve_refuses_to_start_the_endpoint_without_a_token(env: dict[str, str],
                                                             message: str) -> None:
    clean = {k: v for k, v in os.environ.items() if k != "RTFS_HTTP_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "delegation", "serve", "--http-port", "0"],
                          capture_output=True, text=True, env={**clean, **env}, timeout=120,
                          check=False)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_the_readme_http_commands_work_as_written(tmp_path: Path) -> None:
    """The README's "Remote steps" commands, run as written in a copy of the examples; the
    first lines they print are the ones the README shows."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Remote steps: HTTP and Ray tasks", 1)[1]
    commands = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    shown = re.search(r"```sh\n.*?```\n\n```\n(.*?)```", section, re.DOTALL)
    assert commands is not None and shown is not None
    shutil.copytree(ROOT / "examples" / "fleet", tmp_path / "examples" / "fleet",
                    ignore=shutil.ignore_patterns("run"))
    env = readme_env(tmp_path, {k: v for k, v in os.environ.items() if k != "RTFS_HTTP_TOKEN"})
    done = run_readme_script([commands.group(1)], tmp_path, env,
                             tmp_path / "examples" / "fleet" / "run" / "exec.out",
                             "the README's delegation serve")
    stdout = done.stdout
    assert done.returncode == 0, (stdout, done.stderr[-3000:])
    expected = [line for line in shown.group(1).splitlines() if line != "..."]
    lines = stdout.splitlines()
    assert lines[:7] == expected[:7]
    header, call = (line.split() for line in expected[7:])  # columns fit their contents
    assert header in [line.split() for line in lines]
    [row] = [line.split() for line in lines if line.startswith("1  remote-rtfs.execute")]
    assert row[:4] == call[:4] and row[6:] == call[6:]  # all but the latency ("338.4 ms")
