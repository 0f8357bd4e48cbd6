"""The arbiter's command line: `delegation serve --arbiter NAME [--resources JSON]` and
`delegation peers --cluster ADDR [--config F] [--json]`.

`serve --arbiter NAME` also runs an arbiter actor `arbiter-NAME` in the fleet's namespace,
built from serve's `--config` (its models serve peer calls) with its own state directory
(`<state dir>/arbiter-NAME`), placed by `--resources` (Ray custom resources, e.g.
`'{"gpu_node": 1}'`; it never holds a CPU). With `--address`, a serve that adds an arbiter
joins the fleet already running there instead of starting a second one.

`peers` prints one line per live arbiter: what it serves, its models, health, load and
latency; with `--json`, stdout holds exactly `{"arbiters": [{...}, ...]}`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cluster.config import ClusterConfig, load
from cluster.errors import ClusterError, FleetNotFound
from cluster.federation import FederationConfig
from cluster.peers_wire import Advert
from delegation.errors import UsageError

NAME = re.compile(r"[A-Za-z0-9_.-]+")
PASSED_ENV = ("PATH", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
              "NO_PROXY")


# --- serve --arbiter --------------------------------------------------------------------

def configure_serve(parser: argparse.ArgumentParser) -> None:
    """Add `--arbiter NAME` and `--resources JSON` to `delegation serve`."""
    parser.add_argument("--arbiter", metavar="NAME",
                        help="also run an arbiter named NAME: this node's models serve "
                             "calls federated from other nodes")
    parser.add_argument("--resources", metavar="JSON",
                        help="Ray resources that place the arbiter, e.g. '{\"gpu_node\": 1}'")


def check_serve(args: argparse.Namespace) -> None:
    """Raise `UsageError` (exit 2) for a bad `--arbiter` or `--resources`."""
    if args.arbiter is not None and not NAME.fullmatch(args.arbiter):
        raise UsageError(f"--arbiter {args.arbiter!r}: a name is letters, digits, '_', '.', "
                         "'-'")
    if args.resources is not None:
        if args.arbiter is None:
            raise UsageError("--resources places an arbiter: give --arbiter NAME too")
        resources(args.resources)


def resources(text: str) -> dict[str, float]:
    """`--resources` as a mapping of resource name to a positive amount."""
    try:
        found = json.loads(text)
    except ValueError as err:
        raise UsageError(f"--resources is not JSON: {err}") from None
    if not isinstance(found, dict) or not all(
            isinstance(k, str) and k and isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v) and v > 0 for k, v in found.items()):
        raise UsageError("--resources must be a JSON object of resource names to positive "
                         "numbers, e.g. '{\"gpu_node\": 1}'")
    return {k: float(v) for k, v in found.items()}


def joined_fleet(args: argparse.Namespace, namespace: str) -> Any:
    """The fleet already running at `--address` that this serve's arbiter joins, or None
    (serve then starts one)."""
    if args.arbiter is None or not args.address:
        return None
    from cluster.actors import open_fleet

    try:
        return open_fleet(args.address, namespace)
    except FleetNotFound:
        return None


def start_arbiter(args: argparse.Namespace, namespace: str) -> list[Callable[[], None]]:
    """Start `--arbiter` if given; what stops it (for serve's list of things to stop)."""
    if args.arbiter is None:
        return []
    from cluster.actors import start_arbiter as start
    from cluster.actors import stop_arbiter

    spec, settings = arbiter_spec(args, namespace)
    handle = start(spec, max_concurrency=settings.max_concurrency)
    print(f"delegation: arbiter {spec.name} serving {namespace}/arbiter-{spec.name}",
          file=sys.stderr, flush=True)
    return [lambda: stop_arbiter(handle)]


def arbiter_spec(args: argparse.Namespace, namespace: str) -> tuple[Any, FederationConfig]:
    """What the arbiter actor is built from: serve's configuration as text (it is parsed
    again in the actor's process), and what it needs of this process's environment."""
    from cluster.arbiter import ArbiterSpec
    from delegation.config import DEFAULT_TOML

    config = load(args.config)
    if args.config is not None:
        path = Path(args.config)
        text, source, base = path.read_text(encoding="utf-8"), str(path), path.resolve().parent
    else:
        text, source, base = DEFAULT_TOML, "<built-in default>", Path.cwd()
    wanted = set(PASSED_ENV) | {p.api_key_env for p in config.remote_providers.values()
                                if p.api_key_env}
    environ = tuple(sorted((k, v) for k, v in os.environ.items() if k in wanted))
    placed = tuple(sorted(resources(args.resources).items())) if args.resources else ()
    spec = ArbiterSpec(args.arbiter, namespace, text, source, str(base),
                       str(config.state_dir / f"arbiter-{args.arbiter}"), environ, placed)
    return spec, FederationConfig.from_sections(config.sections)


# --- delegation peers ---------------------------------------------------------------------

def configure(parser: argparse.ArgumentParser) -> None:
    from cluster.connect import add_fleet_options

    add_fleet_options(parser)


def run(args: argparse.Namespace) -> int:
    from cluster.connect import fleet_address

    cluster, address = fleet_address(args, "peers")
    try:
        adverts = _adverts(address, cluster)
    except ClusterError as err:
        print(f"delegation: peers: {err}", file=sys.stderr)
        return 1
    now = time.time()
    if args.json:
        print(json.dumps({"arbiters": [as_dict(a, now) for a in adverts]}))
    else:
        print(as_table(adverts, now))
    return 0


def _adverts(address: str, cluster: ClusterConfig) -> list[Advert]:
    from cluster.connect import fleet_session

    with fleet_session(address, cluster) as fleet:
        from cluster.actors import DIRECTORY_NAME, ray_get  # Ray, once connected

        found = ray_get(fleet.directory.arbiters.remote(), timeout_s=cluster.timeout_s * 2,
                        name=DIRECTORY_NAME)
    return [Advert.from_list(a) for a in found]


def as_dict(advert: Advert, now: float) -> dict[str, Any]:
    """One arbiter for `--json`."""
    return {"name": advert.arbiter, "node": advert.node, "serves": list(advert.serves),
            "models": list(advert.models), "healthy": advert.healthy,
            "health": advert.health, "in_flight": advert.in_flight,
            "max_concurrency": advert.max_concurrency,
            "latency_ms": round(advert.latency_s * 1e3, 3), "served": advert.served,
            "failed": advert.failed, "resources": dict(advert.resources),
            "heartbeat_s": advert.heartbeat_s,
            "seen_s_ago": round(max(0.0, now - advert.seen_at), 3)}


COLUMNS = ("arbiter", "serves", "models", "health", "load", "p50", "served", "seen")


def as_table(adverts: list[Advert], now: float) -> str:
    """One line per arbiter, then each one's health."""
    if not adverts:
        return "(no arbiters: start one with `delegation serve --arbiter NAME`)"
    rows = [(a.arbiter, ",".join(a.serves) or "-", ",".join(a.models) or "-",
             "ok" if a.healthy else "UNHEALTHY", f"{a.in_flight}/{a.max_concurrency}",
             f"{a.latency_s * 1e3:.1f} ms", f"{a.served} ({a.failed} failed)",
             f"{max(0.0, now - a.seen_at):.1f} s ago") for a in adverts]
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    lines += ["", *(f"{a.arbiter}: {a.health}" + (f" (node {a.node[:12]})" if a.node else "")
                    for a in adverts)]
    return "\n".join(lines)
