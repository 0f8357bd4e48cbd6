"""The fleet end to end: `delegation serve` as a subprocess, then `delegation run --cluster`
processes with separate state directories and keys, sharing L4 in S3 (moto's server on
127.0.0.1). The second node is decided by plans the first stored and loads the first's
published code, and is served by the first's model answers (L2) and decided by what it learned
per context (L3); `cache stats` and the metrics endpoint see the fleet."""

from __future__ import annotations

import json
import os
import signal
import socket
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from storage.signing import public_key_hex, save_private_key
from storage.testservers import MotoServer, free_port
from tests.cluster.processes import ServeProcess, delegation
from tests.delegation.l2.test_integration import faq_models

NAMESPACE = "fleet-e2e"
BUCKET = "fleet"
PROGRAM = """
(defn word-count [s] (count (split s " ")))
(word-count "the fleet shares what it learns")
(call :tone "what a lovely day")
"""
NODE_CONFIG = """
[delegation.local_models.sentiment-rules]
kind = "sentiment-rules"

[delegation.l4]
store = "s3://{bucket}/l4"
signing_key = "{key}"
trusted_keys = ["trusted.txt"]

[delegation.cluster]
namespace = "{namespace}"
"""


@dataclass
class Fleet:
    serve: ServeProcess
    address: str
    env: dict[str, str]
    home: Path

    def run(self, node: str, state: str, *extra: str) -> dict:
        done = delegation("run", str(self.home / "plan.rtfs"), "--cluster", self.address,
                          "--config", str(self.home / f"{node}.toml"),
                          "--state-dir", str(self.home / state), *extra, env=self.env)
        assert done.returncode == 0, done.stderr
        return {"stdout": done.stdout, "stderr": done.stderr,
                "json": json.loads(done.stdout) if "--json" in extra else None}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    home = tmp_path_factory.mktemp("fleet")
    trusted = []
    for node in ("node-a", "node-b"):
        key = Ed25519PrivateKey.generate()
        save_private_key(key, home / f"{node}.pem")
        trusted.append(public_key_hex(key))
        (home / f"{node}.toml").write_text(NODE_CONFIG.format(
            bucket=BUCKET, key=f"{node}.pem", namespace=NAMESPACE))
    (home / "trusted.txt").write_text("\n".join(trusted) + "\n")
    (home / "plan.rtfs").write_text(PROGRAM)
    (home / "serve.toml").write_text(f'[delegation.cluster]\nnamespace = "{NAMESPACE}"\n')
    with MotoServer() as moto:
        moto.client().create_bucket(Bucket=BUCKET)
        env = dict(os.environ, AWS_ENDPOINT_URL=moto.endpoint_url, AWS_ACCESS_KEY_ID="testing",
                   AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
        serve = ServeProcess(home / "serve", "--config", str(home / "serve.toml"),
                             "--shards", "3", "--metrics-port", "0", env=env)
        try:
            address = serve.wait_ready()
            yield Fleet(serve, address, env, home)
        finally:
            # SIGINT here (the README's `kill` sends SIGTERM): serve stops within 30 s, exit
            # 0, and takes the head it started along.
            rc = serve.stop(signal.SIGINT)
        assert rc == 0, serve.errors()[-2000:]
        host, port = address.rsplit(":", 1)
        with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=5):
            pass


@pytest.fixture(scope="module")
def two_runs(fleet: Fleet) -> tuple[dict, dict]:
    """Node A runs the plan cold, then node B (its own state directory and key)."""
    return fleet.run("node-a", "state-a", "--json"), fleet.run("node-b", "state-b", "--json")


def test_serve_prints_an_address_run_accepts(fleet: Fleet) -> None:
    assert fleet.serve.output().splitlines()[0] == f"ready: {fleet.address}"
    host, port = fleet.address.rsplit(":", 1)
    assert host == "127.0.0.1" and port.isdigit()


def test_the_second_node_starts_warm_from_the_first(two_runs: tuple[dict, dict]) -> None:
    a, b = (run["json"] for run in two_runs)
    assert a["value"] == b["value"]
    [a_tone] = [c for c in a["calls"] if c["symbol"] == "tone"]
    [b_tone] = [c for c in b["calls"] if c["symbol"] == "tone"]
    assert (a_tone["layer"], a_tone["cache"]) == ("capability", "stored")
    assert (b_tone["layer"], b_tone["cache"]) == ("l1-cache", "hit")
    assert b_tone["target"] == a_tone["target"]
    [a_fn], [b_fn] = a["functions"], b["functions"]
    assert a_fn["origin"] == "compiled+published" and a_fn["detail"].startswith(f"s3://{BUCKET}/")
    assert (b_fn["name"], b_fn["origin"]) == ("word-count", "l4")  # signed by node A
    assert b_fn["source_hash"] == a_fn["source_hash"]


def test_model_answers_and_context_tables_are_shared_by_the_fleet(fleet: Fleet) -> None:
    program = fleet.home / "caches.rtfs"
    program.write_text('[(call :answer "How do I reset my password?")'
                       ' (call :answer "how can I reset my password")]')
    config = fleet.home / "caches.toml"
    # the fast model still takes 0.1 s: a lookup on a busy machine must stay cheaper than the
    # call it saves, or L2 is rightly not asked at all
    config.write_text(faq_models(fleet.home, fast_s=0.1) + '[delegation.context]\ntenant = "acme"\n'
                      '[delegation.l2]\nlocal_min_latency_ms = 0\nshadow_rate = 0\n'
                      f'[delegation.cluster]\nnamespace = "{NAMESPACE}"\n')
    runs = []
    for state in ("caches-a", "caches-b"):
        done = delegation("run", str(program), "--cluster", fleet.address, "--config",
                          str(config), "--state-dir", str(fleet.home / state), "--json",
                          env=fleet.env)
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout))
    a, b = runs
    assert [c["l2"] for c in a["calls"]] == ["stored", "stored"]
    assert all("untried here" in c["reason"] for c in a["calls"])
    assert [c["layer"] for c in b["calls"]] == ["l3-context", "l3-context"]
    assert all("mean reward" in c["reason"] for c in b["calls"])  # node a's tables
    assert [c["l2"] for c in b["calls"]] == ["semantic", "exact"]  # node a's answers
    assert [c["detail"] for c in b["calls"]] == [a["calls"][1]["detail"]] * 2  # none ran


def test_explain_shows_a_fleet_plan_as_an_l1_hit(fleet: Fleet, two_runs: tuple) -> None:
    explained = fleet.run("node-b", "state-c", "--explain")["stdout"]
    [row] = [line for line in explained.splitlines() if " tone " in f" {line} "]
    assert "l1-cache" in row.split() and "hit" in row.split()


def test_cache_stats_json_is_exactly_one_object(fleet: Fleet, two_runs: tuple) -> None:
    done = delegation("cache", "stats", "--cluster", fleet.address, "--config",
                      str(fleet.home / "serve.toml"), "--json", env=fleet.env)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)  # all of stdout: nothing else is printed there
    assert list(document) == ["shards"] and len(document["shards"]) == 3
    fields = ["name", "entries", "hits", "misses", "evictions", "expirations", "restarts",
              "down"]
    assert all(list(row) == fields for row in document["shards"])
    assert sum(row["entries"] for row in document["shards"]) > 0
    assert sum(row["hits"] for row in document["shards"]) > 0
    assert not any(row["down"] for row in document["shards"])


def test_the_metrics_endpoint_sees_decisions_and_shards(fleet: Fleet, two_runs: tuple) -> None:
    with urllib.request.urlopen(fleet.serve.metrics_url(), timeout=30) as response:
        text = response.read().decode()
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert any(line.startswith('rtfs_decisions_total{layer="l1-cache"') for line in lines)
    assert any(line.startswith('rtfs_cache_lookups_total{result="hit",tier="l4"}')
               and float(line.split()[-1]) >= 1 for line in lines)
    assert sum(line.startswith("rtfs_shard_up{") and line.endswith(" 1.0")
               for line in lines) == 3
    assert any(line.startswith("rtfs_breaker_state{") for line in lines)


def test_an_unreachable_cluster_is_one_warning_and_the_run_succeeds(fleet: Fleet) -> None:
    address = f"127.0.0.1:{free_port()}"
    done = delegation("run", str(fleet.home / "plan.rtfs"), "--cluster", address,
                      "--state-dir", str(fleet.home / "state-alone"), env=fleet.env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("{:label")
    warnings = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and "warning" in warnings[0] and address in warnings[0]
    assert "local caches" in warnings[0]


@pytest.mark.parametrize("command", [
    ["run", "plan.rtfs", "--cluster", "nonsense"],
    ["cache", "stats", "--cluster", "127.0.0.1:notaport"],
    ["serve", "--shards", "0"],
    ["serve", "--address", "nonsense"],
])
def test_bad_input_is_one_line_and_exit_2(fleet: Fleet, command: list[str]) -> None:
    done = delegation(*command, env=fleet.env, cwd=fleet.home)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_cache_stats_of_an_unreachable_cluster_is_one_line_and_exit_1(fleet: Fleet) -> None:
    done = delegation("cache", "stats", "--cluster", f"127.0.0.1:{free_port()}", "--json",
                      env=fleet.env)
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "unavailable" in done.stderr


def test_a_run_with_the_wrong_token_is_refused_and_runs_on_local_caches(fleet: Fleet) -> None:
    env = dict(fleet.env, RAY_AUTH_TOKEN="0" * 64)  # wins over RAY_AUTH_TOKEN_PATH
    done = delegation("run", str(fleet.home / "plan.rtfs"), "--cluster", fleet.address,
                      "--state-dir", str(fleet.home / "state-stranger"), env=env)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("delegation:")]
    assert len(warnings) == 1 and "refused authentication" in warnings[0]
    assert done.stdout.startswith("{:label")
