"""`delegation serve`: run a fleet's cache shards (and its metrics endpoint) in the foreground.

    delegation serve [--config F] [--address ADDR] [--host H] [--shards N] [--metrics-port P]
                     [--arbiter NAME [--resources JSON]]
                     [--http-port P] [--http-host H] [--http-token-env VAR]

Without `--address` it starts a Ray head in this process, bound to `--host` (127.0.0.1 by
default), token authentication on; with `--address ADDR` (`host:port`, or `auto` for the
cluster of this machine, as in a KubeRay head pod) it joins that cluster instead. It then
starts the fleet's directory and shards in the `[delegation.cluster]` namespace, prints one
line `ready: <address>` (what `--cluster` takes) and stays until SIGINT or SIGTERM; then it
stops what it started (the shards, the metrics endpoint, and the head if it started one),
within `STOP_TIMEOUT_S`. `--arbiter NAME` also runs an arbiter (see `cluster.peerscmd`).
It also publishes how remote steps run on the fleet (its configuration, `cluster.steptasks`)
and, with `--http-port`, serves them over HTTP (`cluster.http`).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

from cluster import peerscmd
from cluster.config import ClusterConfig, load
from cluster.errors import ClusterError
from delegation.errors import ConfigError, UsageError

STOP_TIMEOUT_S = 25.0  # the contract says 30 s


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="F", help="delegation.toml ([delegation.cluster])")
    parser.add_argument("--address", metavar="ADDR",
                        help="join this Ray cluster (host:port, or auto) instead of starting "
                             "a head")
    parser.add_argument("--host", default="127.0.0.1", metavar="H",
                        help="the address Ray and the metrics endpoint bind (127.0.0.1)")
    parser.add_argument("--shards", type=int, metavar="N", help="cache shards to start")
    parser.add_argument("--metrics-port", type=int, metavar="P",
                        help="serve Prometheus metrics on this port (0: a free one)")
    peerscmd.configure_serve(parser)
    from cluster import http

    http.configure(parser)


class _Stop:
    """SIGINT and SIGTERM set the event; the main thread waits for it."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()

    def wait(self) -> None:
        while not self.event.wait(0.5):
            pass


def run(args: argparse.Namespace) -> int:
    stop = _Stop()
    stop.install()  # before Ray starts: a signal during start-up still stops cleanly
    config = load(args.config)
    cluster = ClusterConfig.from_sections(config.sections)
    shards = cluster.shards if args.shards is None else args.shards
    if shards < 1:
        raise UsageError(f"--shards must be at least 1, not {shards}")
    if args.metrics_port is not None and not 0 <= args.metrics_port < 65536:
        raise UsageError(f"--metrics-port {args.metrics_port} is not a port")
    try:
        replication = cluster.replication_for(shards)
    except ValueError as err:
        raise UsageError(str(err)) from None
    peerscmd.check_serve(args)
    steps = _steps(args, config)  # before Ray starts: no token is bad input, exit 2
    try:
        return _serve(args, cluster, shards, replication, stop, steps)
    except ClusterError as err:
        print(f"delegation: serve: {err}", file=sys.stderr)
        return 1


def _serve(args: argparse.Namespace, cluster: ClusterConfig, shards: int, replication: int,
           stop: _Stop, steps: tuple[Any, Any]) -> int:
    from cluster import raynode
    from cluster.connect import check_address

    if args.address:
        check_address(args.address, "--address")
    started: list[Any] = []
    try:
        if args.address:
            raynode.connect(args.address, cluster.namespace)
            address = raynode.gcs_address()
        else:
            address = raynode.start_head(args.host, cluster.namespace)
        stop.install()  # again: Ray's start-up may have put its own handlers in
        from cluster.actors import start_fleet

        fleet = peerscmd.joined_fleet(args, cluster.namespace)  # an arbiter joining a fleet
        joined = fleet is not None
        if fleet is None:
            fleet = start_fleet(cluster.namespace, shards, replication,
                                max_entries=cluster.max_entries,
                                namespace_max={"l2": min(cluster.l2_max_entries,
                                                         cluster.max_entries)})
            started.append(fleet.stop)
        started.extend(peerscmd.start_arbiter(args, cluster.namespace))
        if args.metrics_port is not None:
            server, port = _metrics(fleet, args.host, args.metrics_port, cluster.timeout_s)
            started.append(server.shutdown)
            print(f"delegation: metrics on http://{args.host}:{port}/metrics", file=sys.stderr)
        start_steps(cluster.namespace, *steps, started, publish=not joined)
        print(f"ready: {address}", flush=True)
        stop.wait()
    finally:
        _stop_all(started)
    return 0


def _steps(args: argparse.Namespace, config: Any) -> tuple[Any, Any]:
    """How remote steps run on this fleet, and the HTTP endpoint's options (or None)."""
    from cluster import http
    from cluster.steps import StepSettings

    options = http.options_from(args, os.environ)
    try:
        return StepSettings.of(config), options
    except ConfigError as err:
        raise UsageError(str(err)) from None


def start_steps(namespace: str, settings: Any, options: Any, started: list[Any], *,
                publish: bool = True) -> None:
    """Publish the step policy (unless this process joins a fleet that has one: an arbiter
    does not replace its fleet's policy), start the HTTP endpoint if asked (each stop step is
    added to `started` as soon as there is something to stop)."""
    from cluster import http
    from cluster.steptasks import publish_policy, withdraw_policy

    if publish:
        policy = publish_policy(settings, namespace)  # held by the stop step: lives as long
        started.append(lambda: withdraw_policy(namespace, policy))
    if options is not None:
        endpoint = http.start(settings, options)
        started.append(endpoint.stop)
        print(f"delegation: http on {endpoint.url}/execute", file=sys.stderr, flush=True)


def _metrics(fleet: Any, host: str, port: int, timeout_s: float) -> tuple[Any, int]:
    from cluster.actors import DIRECTORY_NAME, ray_get
    from cluster.metrics import FleetCollector, serve_metrics
    from cluster.stats import fleet_report

    client = fleet.client(timeout_s=timeout_s)

    def fetch() -> tuple[dict[str, float], list[Any]]:
        try:
            totals = ray_get(fleet.directory.totals.remote(), timeout_s=timeout_s,
                             name=DIRECTORY_NAME)
            restarts = ray_get(fleet.directory.restarts.remote(), timeout_s=timeout_s,
                               name=DIRECTORY_NAME)
        except ClusterError:
            totals, restarts = {}, {}
        return totals, fleet_report(client, restarts)

    try:
        return serve_metrics(FleetCollector(fetch), host, port)
    except OSError as err:
        raise UsageError(f"--metrics-port {port}: {err.strerror or err}") from None


def _stop_all(started: list[Any]) -> None:
    """Stop in reverse order, then Ray itself; bounded so that a stuck step cannot keep
    the process past its deadline."""
    from cluster import raynode

    done = threading.Event()

    def stop_everything() -> None:
        try:
            for step in reversed(started):
                try:
                    step()
                except (ClusterError, OSError, RuntimeError):
                    continue  # stop the rest regardless
            raynode.disconnect(STOP_TIMEOUT_S)
        finally:
            done.set()

    threading.Thread(target=stop_everything, name="serve-stop", daemon=True).start()
    done.wait(STOP_TIMEOUT_S + 2)
