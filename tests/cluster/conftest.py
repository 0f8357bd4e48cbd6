"""One shared single-node Ray for the cluster tests, inside a loopback-only network namespace.

Ray starts on first use (`ray_session`), with 2 CPUs, no dashboard, a small object store, its
own temp directory and namespace, and token authentication on (a token generated for this
test session, handed to every process the tests start through `RAY_AUTH_TOKEN_PATH`). A module
that needs a multi-node `ray.cluster_utils.Cluster` calls `shutdown_ray()` first (the two
cannot be live in one driver); the next test that needs the shared Ray starts it again.

Ray would bind every interface this machine has: outside a loopback-only namespace the tests
that start Ray fail at once, saying how to run them (`scripts/test --netns`).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import tempfile
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


@dataclass(frozen=True)
class RaySession:
    """The shared Ray: its GCS address and the namespace tests create actors in."""

    address: str
    namespace: str


_session: list[RaySession] = []


def non_loopback_interfaces() -> list[str]:
    return sorted(name for _, name in socket.if_nameindex() if name != "lo")


def require_loopback_only() -> None:
    """Fail now, with the remedy, unless this process sees only the loopback interface."""
    others = non_loopback_interfaces()
    if others:
        pytest.fail(
            f"Ray would bind non-loopback interfaces here ({', '.join(others)}): run the "
            "cluster tests in a loopback-only network namespace, e.g. `scripts/test --netns "
            "tests/cluster` (CI does) or `LOOPBACK_NS=lo-test ../shared/tools/loopback-only "
            "python -m pytest tests/cluster`", pytrace=False)


def ensure_ray() -> RaySession:
    """Start (once) the shared single-node Ray and return it."""
    import ray

    if _session and ray.is_initialized():
        return _session[0]
    require_loopback_only()
    context = ray.init(num_cpus=2, include_dashboard=False, namespace=NAMESPACE,
                       object_store_memory=OBJECT_STORE_BYTES, _node_ip_address="127.0.0.1",
                       log_to_driver=False, configure_logging=False)
    addresses = {node["NodeManagerAddress"] for node in ray.nodes()}
    if not all(ipaddress.ip_address(a).is_loopback for a in addresses):
        ray.shutdown()
        pytest.fail(f"Ray bound {sorted(addresses)}, not loopback only", pytrace=False)
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
