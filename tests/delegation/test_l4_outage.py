"""L4 is a cache: a store that is down, refuses connections or never answers costs a run a
few seconds at most, and never its answer.

Stores: moto's S3 server stopped mid-run, a port that refuses, a server that accepts and
never answers. Lookups miss, publishes are skipped with one warning line, the plan returns
its value; a function that is missing only because L4 is down is reported as such.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from delegation.config import parse_config
from delegation.runtime import Runtime
from rtfs.errors import HostError
from storage import open_l4
from storage.testservers import MotoServer, SilentServer, free_port

PLAN = "(defn triple [x] (* 3 x))\n(defn inc [x] (+ x 1))\n(inc (triple 4))"


def config(tmp_path: Path, store: str = "s3://l4-bucket/p"):
    text = f'[delegation.l4]\nstore = "{store}"\nread_timeout_s = 1\nconnect_timeout_s = 1\n'
    return parse_config(text, base_dir=tmp_path)


def s3_index(tmp_path: Path, endpoint: str, bucket: str = "l4-bucket"):
    """An index on `endpoint` with short timeouts, latched for the runtime's life."""
    args = {"endpoint_url": endpoint, "region_name": "us-east-1",
            "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return open_l4(f"s3://{bucket}/p", state_dir=tmp_path / "keys", connect_timeout_s=1,
                   read_timeout_s=1, down_for_s=None, **args)


def run(tmp_path: Path, index, program: str = PLAN):
    warnings: list[str] = []
    runtime = Runtime(config(tmp_path), l4_index=index, out=io.StringIO(),
                      warn=warnings.append)
    return runtime, warnings


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_a_dead_store_costs_one_failure_and_the_plan_returns_its_value(tmp_path, kind):
    silent = SilentServer().start() if kind == "silent" else None
    try:
        endpoint = silent.url if silent else f"http://127.0.0.1:{free_port()}"
        runtime, warnings = run(tmp_path, s3_index(tmp_path, endpoint))
        assert runtime.run(PLAN).value == 13
        origins = {f.name: f.origin for f in runtime.last_functions}
        assert origins == {"triple": "compiled", "inc": "compiled"}
        assert any("not published (L4 down" in f.detail for f in runtime.last_functions)
        assert len(warnings) == 1 and "is down" in warnings[0]
        if silent is not None:
            touched = silent.accepted
            assert runtime.run(PLAN).value == 13  # a second run asks the network nothing
            assert silent.accepted == touched
    finally:
        if silent is not None:
            silent.stop()


def test_a_store_stopped_mid_run_is_a_miss_not_a_failure(tmp_path):
    server = MotoServer()
    endpoint = server.start()
    try:
        server.client().create_bucket(Bucket="l4-bucket")
        index = s3_index(tmp_path, endpoint)
        runtime, warnings = run(tmp_path, index)
        assert runtime.run("(defn triple [x] (* 3 x)) (triple 2)").value == 6
        assert runtime.last_functions[0].origin == "compiled+published"
    finally:
        server.stop()
    assert runtime.run(PLAN).value == 13  # the store died: lookups miss, publishes skipped
    assert [f.origin for f in runtime.last_functions] == ["compiled", "compiled"]
    assert len(warnings) == 1


def test_a_function_missing_because_l4_is_down_says_so(tmp_path):
    index = s3_index(tmp_path, f"http://127.0.0.1:{free_port()}")
    runtime, _ = run(tmp_path, index)
    with pytest.raises(HostError) as info:
        runtime.run("(published-elsewhere 1)")
    message = str(info.value)
    assert "published-elsewhere" in message and "is down" in message
    assert "unbound symbol" not in message


def test_the_cli_finishes_quickly_against_a_store_that_never_answers(tmp_path):
    """Seen before: 485 s for a two-line plan. Now: the default timeouts, one failure, then
    the store counts as down for the rest of the run (the subprocess timeout bounds it)."""
    with SilentServer() as silent:
        (tmp_path / "plan.rtfs").write_text(PLAN)
        (tmp_path / "delegation.toml").write_text(
            f'[delegation.l4]\nstore = "s3://b-{uuid.uuid4().hex[:8]}/p"\n')
        env = {**os.environ, "AWS_ENDPOINT_URL": silent.url, "AWS_ACCESS_KEY_ID": "t",
               "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1",
               "XDG_STATE_HOME": str(tmp_path / "state")}
        done = subprocess.run([sys.executable, "-m", "delegation", "run", "plan.rtfs"],
                              cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "13"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "warning" in lines[0] and "is down" in lines[0], done.stderr
