"""Joining and starting Ray for the `delegation` commands (the edge: this module reads and
sets the process environment Ray reads; the core classes never do).

- Token authentication stays on: `RAY_AUTH_MODE=token` unless the caller chose otherwise.
  Ray finds the token in `RAY_AUTH_TOKEN`, `RAY_AUTH_TOKEN_PATH` or `~/.ray/auth_token`
  (where a head started by `delegation serve` writes a new one).
- A runtime's driver outlives the head: Ray ends a driver whose GCS has been gone for
  `gcs_rpc_server_reconnect_timeout_s` (60 s by default); a run connected to a fleet raises
  it to `GCS_RECONNECT_TIMEOUT_S`, so a run whose head died finishes on its local caches
  however long it takes (every shard call is bounded by its own timeout meanwhile).
- A fleet that is not there is found out fast: a TCP probe of the GCS port before `ray.init`
  (which retries for a long time otherwise).
"""

from __future__ import annotations

import atexit
import ipaddress
import logging
import os
import socket
import sys
import threading
from collections.abc import MutableMapping

from cluster.errors import AuthenticationFailed, ClusterUnavailable

GCS_RECONNECT_TIMEOUT_S = 7 * 86_400
PROBE_TIMEOUT_S = 3.0
SHUTDOWN_TIMEOUT_S = 20.0
JOIN_RETRIES = 8  # seconds Ray keeps asking a GCS that accepted the connection


def prepare_environment(environ: MutableMapping[str, str] | None = None, *,
                        outlive_head: bool = False, loopback: bool = False) -> None:
    """Set what Ray reads from the environment (before it is imported), keeping anything the
    user set. `loopback`: this node is 127.0.0.1 and every Ray port binds there only."""
    env = os.environ if environ is None else environ
    env.setdefault("RAY_AUTH_MODE", "token")
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never report usage over the network
    env.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")  # a stray call never starts a local Ray
    if outlive_head:
        env.setdefault("RAY_gcs_rpc_server_reconnect_timeout_s", str(GCS_RECONNECT_TIMEOUT_S))
    if loopback:
        # Ray turns 127.0.0.1 into this machine's routable address and binds 0.0.0.0, unless
        # it believes multi-machine clusters are off (its default on macOS and Windows): then
        # the node address is 127.0.0.1 and every Ray port listens on loopback only.
        env.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def split_address(address: str) -> tuple[str, int]:
    """`host:port` -> (host, port).

    Raises:
        ValueError: not host:port.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not host:port (the address `delegation serve` "
                         "printed after 'ready:')")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def probe(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Raise `ClusterUnavailable` unless something accepts TCP connections at `address`."""
    host, port = split_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as err:
        raise ClusterUnavailable(address, err.strerror or str(err)) from None


def connect(address: str, namespace: str, *, outlive_head: bool = False) -> None:
    """Join the Ray cluster at `address` as a driver in `namespace`.

    Raises:
        ClusterUnavailable: nothing answers there, or Ray could not join it.
        AuthenticationFailed: the cluster refused this process's token.
    """
    if address != "auto":
        probe(address)
    loopback = address != "auto" and is_loopback(split_address(address)[0])
    prepare_environment(outlive_head=outlive_head, loopback=loopback)
    # Ray retries its first GCS call once a second, 20 times; the port answered the probe, so
    # a refusal (a wrong token) need not take that long to report.
    os.environ.setdefault("RAY_NUM_REDIS_GET_RETRIES", str(JOIN_RETRIES))
    import ray
    from ray.exceptions import AuthenticationError

    try:
        ray.init(address=address, namespace=namespace, log_to_driver=False,
                 logging_level=logging.WARNING)
    except AuthenticationError as err:
        raise AuthenticationFailed(address, _first_line(err)) from None
    except (ConnectionError, RuntimeError, ValueError) as err:
        if _refused_token(err):  # Ray carries it as text in the cause's message
            raise AuthenticationFailed(address, "no token, or not the head's") from None
        raise ClusterUnavailable(address, _first_line(err)) from None


def start_head(host: str, namespace: str, *, num_cpus: int | None = None,
               object_store_bytes: int | None = None) -> str:
    """Start a Ray head in this process, bound to `host`; its GCS address (host:port).

    Raises:
        ClusterUnavailable: Ray could not start.
    """
    prepare_environment(loopback=is_loopback(host))
    import ray

    try:
        context = ray.init(namespace=namespace, include_dashboard=False,
                           _node_ip_address=host, num_cpus=num_cpus,
                           object_store_memory=object_store_bytes, log_to_driver=False,
                           logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError, OSError) as err:
        raise ClusterUnavailable(host, f"Ray did not start: {_first_line(err)}") from None
    return str(context.address_info["gcs_address"])  # type: ignore[attr-defined]


def gcs_address() -> str:
    """The GCS address of the cluster this process is connected to."""
    import ray

    return str(ray.get_runtime_context().gcs_address)


def disconnect(timeout_s: float = SHUTDOWN_TIMEOUT_S) -> bool:
    """`ray.shutdown()`, bounded: whether it finished (a dead head can make it hang)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return True  # never imported: nothing to stop (and no second spent importing it)
    done = threading.Event()

    def shutdown() -> None:
        try:
            ray.shutdown()
        finally:
            done.set()

    threading.Thread(target=shutdown, name="ray-shutdown", daemon=True).start()
    finished = done.wait(timeout_s)
    if not finished:
        # Ray registered its own `shutdown` to run at exit: against the same dead head it
        # would block the interpreter's exit with no bound, after this one gave up.
        atexit.unregister(ray.shutdown)
    return finished


def _refused_token(err: BaseException) -> bool:
    seen: BaseException | None = err
    while seen is not None:
        if "AuthenticationError" in str(seen) or "InvalidAuthToken" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
