"""One shared single-node Ray for the cluster tests, inside a loopback-only network namespace.

Ray starts on first use (`ray_session`), with 2 CPUs, no dashboard, a small object store, its
own temp directory and namespace, and token authentication on (a token generated for this
test session, handed to every process the tests start through `RAY_AUTH_TOKEN_PATH`). A module
that needs a multi-node `ray.cluster_utils.Cluster` calls `shutdown_ray()` first (the two
cannot be live in one driver); the next test that needs the shared Ray starts it again.

Every Ray the tests start is bound to 127.0.0.1 (CI also runs them in a loopback-only network
namespace); right after a Ray or a `delegation serve` starts, its process tree is checked, and
a socket listening on anything but loopback fails the test at once, saying where.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

NAMESPACE = "rtfs-tests"
OBJECT_STORE_BYTES = 80 * 1024 * 1024  # Ray's minimum is 75 MiB

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="rtfs-ray-"))
os.environ.setdefault("RAY_TMPDIR", str(_SESSION_DIR))  # never /tmp/ray, shared by all users
if "RAY_AUTH_TOKEN" not in os.environ and "RAY_AUTH_TOKEN_PATH" not in os.environ:
    _token = _SESSION_DIR / "auth_token"
    _token.write_text(secrets.token_hex(32))
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(_token)
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")  # a stray call never starts a Ray
# Ray binds loopback only (it turns 127.0.0.1 into the routable address otherwise).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@dataclass(frozen=True)
class RaySession:
    """The shared Ray: its GCS address and the namespace tests create actors in."""

    address: str
    namespace: str


_session: list[RaySession] = []


def non_loopback_listeners(pid: int) -> list[str]:
    """Listening TCP sockets of process `pid` and its descendants not bound to loopback."""
    import psutil  # type: ignore[import-untyped]

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    found = []
    for process in processes:
        try:
            sockets = process.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for sock in sockets:
            if sock.status == psutil.CONN_LISTEN and not _loopback(sock.laddr.ip):
                found.append(f"{process.pid} {sock.laddr.ip}:{sock.laddr.port}")
    return found


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def require_loopback_listeners(pid: int, what: str) -> None:
    """Fail now, saying what listened where, if `pid`'s process tree (a Ray we started,
    `delegation serve`) listens on anything but loopback: the tests talk to 127.0.0.1 only."""
    found = non_loopback_listeners(pid)
    if found:
        pytest.fail(f"{what} listens beyond loopback ({'; '.join(found)}): the cluster tests "
                    "bind 127.0.0.1 only (run them as CI does, `scripts/test --netns`)",
                    pytrace=False)


def readme_commands(heading: str) -> list[str]:
    """The commands of the first sh block after `heading` in the README, one per line
    (continuations joined), without the install line this test environment already did."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text.split(heading, 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, f"the README's {heading!r} section has no sh block"
    return [line for line in block.group(1).replace("\\\n", "").splitlines()
            if line.strip() and not line.startswith("pip install")]


def readme_env(tmp_path: Path, env: dict[str, str]) -> dict[str, str]:
    """`env` where the README's `python` and `delegation` are this interpreter's own (also
    in a virtualenv that is not activated: a symlink to its python would not find the
    environment's packages, and `delegation` on PATH could be another installation's)."""
    shims = tmp_path / "bin"
    shims.mkdir(exist_ok=True)
    python = shims / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    scripts = sysconfig.get_path("scripts")
    return dict(env, PATH=os.pathsep.join([str(shims), scripts, env.get("PATH", "")]))


def run_readme_script(commands: list[str], cwd: Path, env: dict[str, str], ready: Path,
                      what: str, start_s: float = 180) -> subprocess.CompletedProcess[str]:
    """Run README commands as one `set -e` bash script in `cwd`; once `ready` (a serve's
    output file) says `ready: `, check that what the script started listens on loopback
    only; wait for the script to end."""
    script = "set -e\n" + "\n".join(commands) + "\n"
    shell = subprocess.Popen(["bash", "-c", script], cwd=cwd, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + start_s
    while shell.poll() is None and time.monotonic() < deadline:
        if ready.exists() and "ready: " in ready.read_text():
            require_loopback_listeners(shell.pid, what)
            break
        time.sleep(0.1)
    stdout, stderr = shell.communicate(timeout=600)
    return subprocess.CompletedProcess(shell.args, shell.returncode, stdout, stderr)


def ensure_ray() -> RaySession:
    """Start (once) the shared single-node Ray and return it."""
    import ray

    if _session and ray.is_initialized():
        return _session[0]
    context = ray.init(num_cpus=2, include_dashboard=False, namespace=NAMESPACE,
                       object_store_memory=OBJECT_STORE_BYTES, _node_ip_address="127.0.0.1",
                       log_to_driver=False, configure_logging=False)
    addresses = {node["NodeManagerAddress"] for node in ray.nodes()}
    listeners = non_loopback_listeners(os.getpid())
    if listeners or not all(_loopback(a) for a in addresses):
        ray.shutdown()
        pytest.fail(f"Ray would talk beyond loopback (nodes {sorted(addresses)}; listeners "
                    f"{listeners}): the cluster tests bind 127.0.0.1 only", pytrace=False)
    address = context.address_info["gcs_address"]  # type: ignore[attr-defined]
    _session[:] = [RaySession(address, NAMESPACE)]
    return _session[0]


def shutdown_ray() -> None:
    """Stop the shared Ray (a multi-node module needs the driver to itself)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    _session.clear()


@pytest.fixture
def ray_session() -> RaySession:
    return ensure_ray()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutdown_ray()
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)  # Ray's session logs and the token
