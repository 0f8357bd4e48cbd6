"""The Ray head dies in the middle of a run: the run completes on its local caches and exits
0, even though it goes on for longer than Ray's own 60 s GCS timeout after the head died
(the runtime's driver is set to outlive the head; see cluster/raynode.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.cluster.processes import ServeProcess, delegation

RAY_GCS_TIMEOUT_S = 60.0  # Ray's default gcs_rpc_server_reconnect_timeout_s
GATE = """
import os, sys, time
sys.stdin.read()
open(sys.argv[1], "w").write("waiting")
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
print("opened")
"""
PROGRAM = """
(call :tone "a good start")
(call :gate "hold")
(call :tone "what a lovely ending")
"""


def write_node(home: Path) -> None:
    (home / "gate.py").write_text(GATE)
    (home / "plan.rtfs").write_text(PROGRAM)
    (home / "node.toml").write_text(f"""
[delegation.local_models.sentiment-rules]
kind = "sentiment-rules"

[delegation.local_models.gate]
kind = "command"
command = [{json.dumps(sys.executable)}, {json.dumps(str(home / "gate.py"))},
           {json.dumps(str(home / "waiting"))},
           {json.dumps(str(home / "go"))}]
timeout_s = 600
capabilities = ["gate"]

[delegation.l2]
enabled = false  # the gate must run in the second run, not be served the first run's answer

[delegation.cluster]
namespace = "head-fault"
""")


def refused(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return False
    except OSError:
        return True


def test_the_run_completes_on_local_caches_after_the_head_dies(tmp_path: Path) -> None:
    write_node(tmp_path)
    env = dict(os.environ, PYTHONFAULTHANDLER="1")  # a hung run shows where it hangs
    serve = ServeProcess(tmp_path / "serve", "--config", str(tmp_path / "node.toml"),
                         "--shards", "2", env=env)
    try:
        address = serve.wait_ready()
        (tmp_path / "go").touch()  # a first run stores the plans the second one prefetches
        warm = delegation("run", str(tmp_path / "plan.rtfs"), "--cluster", address,
                          "--config", str(tmp_path / "node.toml"), "--state-dir",
                          str(tmp_path / "first"), env=env)
        assert warm.returncode == 0, warm.stderr
        (tmp_path / "go").unlink()
        (tmp_path / "waiting").unlink()
        run = subprocess.Popen(
            [sys.executable, "-m", "delegation", "run", str(tmp_path / "plan.rtfs"),
             "--cluster", address, "--config", str(tmp_path / "node.toml"),
             "--state-dir", str(tmp_path / "second"), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + 120
        while not (tmp_path / "waiting").exists():
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()
            time.sleep(0.05)
    finally:
        serve.kill()  # SIGKILL to the head's whole process group, mid-run
    assert refused(address)
    died = time.monotonic()
    while time.monotonic() - died < RAY_GCS_TIMEOUT_S + 5:
        assert run.poll() is None, run.communicate()  # Ray would have ended it by now
        time.sleep(0.5)
    (tmp_path / "go").touch()
    try:
        stdout, stderr = run.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        run.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
        stdout, stderr = run.communicate(timeout=30)
        raise AssertionError(f"the run did not end 120 s after the gate opened:\n"
                             f"{stdout[-2000:]}\n{stderr[-8000:]}") from None
    assert run.returncode == 0, stderr[-3000:]
    document = json.loads(stdout)
    assert document["error"] is None and document["value"].startswith("{:label")
    calls = [(c["symbol"], c["layer"], c["outcome"]) for c in document["calls"]]
    # The last decision was made after the head had died, from the run's near-cache.
    assert calls == [("tone", "l1-cache", "ok"), ("gate", "l1-cache", "ok"),
                     ("tone", "l1-cache", "ok")]
