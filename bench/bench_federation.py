"""A federated call against a local call and a bare Ray 1:1 actor call, in the same run.

    python bench/bench_federation.py [--rounds N]

Starts a private single-node Ray (127.0.0.1, 2 CPUs, no dashboard, token auth with a token
made for this run), a fleet (its directory) and two arbiter actors: `b` has model X (the
capability `x`, served by the sentiment rules), `a` has nothing. Then, per call, p50/p99:

- yardstick: a trivial actor's 1:1 synchronous call (bytes in, the same bytes out);
- the remote work: `x` on a runtime that has the model itself (what b does for a call);
- a federated call: `x` on a runtime that lacks it, through the engine's federation to b;
- the same through the peer provider alone (no engine on the calling side);
- two hops: the peer provider to arbiter a, which federates to b.

Goal: federation overhead (federated - remote work) <= 3x the 1:1 call. L2 is off on every
side (it would answer repeated calls from earlier answers). The sides alternate call by call
(A, B, C, A, B, C, ...), so drift on a shared, noisy machine hits all of them. Not a test:
the table says whether the goal was met in this run.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rayenv import RAY_HOME  # first: Ray reads the environment it sets at import

# isort: split

import ray  # after the environment Ray reads at import
from timing import interleaved, pct

from cluster.actors import peer_transport, start_arbiter, start_fleet, stop_arbiter
from cluster.arbiter import ArbiterSpec
from cluster.federation import Federation
from cluster.peers import PeerProvider
from delegation.config import parse_config
from delegation.runtime import Runtime
from rtfs.router import CallKind, RoutedCall
from rtfs.values import EMPTY_MAP

TEXT = "what a lovely day"
NO_L2 = "\n[delegation.l2]\nenabled = false\n"
X_MODEL = """
[delegation.local_models.x-model]
kind = "sentiment-rules"
capabilities = ["x"]
""" + NO_L2
ORIGIN = '[delegation.security]\nallowed_peers = ["*"]\n' + NO_L2


class Echo:
    """The trivial actor: Ray's own ceiling for a call."""

    def ping(self, data: bytes) -> bytes:
        return data


def forward(provider: PeerProvider) -> Callable[[], object]:
    call = RoutedCall("x", CallKind.CAPABILITY, None, None, EMPTY_MAP, (TEXT,), lambda: None)
    return lambda: provider.forward(call)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=400)
    args = parser.parse_args()
    namespace = f"bench-fed-{uuid.uuid4().hex[:8]}"
    ray.init(num_cpus=2, include_dashboard=False, namespace=namespace,
             object_store_memory=80 * 1024 * 1024, _node_ip_address="127.0.0.1",
             log_to_driver=False, configure_logging=False)
    tmp = Path(tempfile.mkdtemp(prefix="rtfs-bench-fed-"))
    fleet = start_fleet(namespace, 1, 1)
    arbiters: list[Any] = []
    try:
        for name, toml in (("b", X_MODEL), ("a", ORIGIN)):
            spec = ArbiterSpec(name, namespace, toml, f"<bench {name}>", str(tmp),
                               str(tmp / f"state-{name}"))
            arbiters.append(start_arbiter(spec, max_concurrency=8))
        rows = measure(args.rounds, tmp)
    finally:
        for handle in arbiters:
            stop_arbiter(handle)
        fleet.stop()
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(RAY_HOME, ignore_errors=True)
    print(f"federation, {args.rounds} calls per side, interleaved; one noisy 2-core machine\n")
    print_table(rows)


def runtime(tmp: Path, name: str, toml: str, federated: bool) -> Runtime:
    config = parse_config(toml, base_dir=tmp, state_dir=tmp / f"state-{name}")
    federation = Federation.for_config(config, peer_transport()) if federated else None
    return Runtime(config, federation=federation)


Row = tuple[str, str, str, str]


def measure(rounds: int, tmp: Path) -> list[Row]:
    echo: Any = ray.remote(Echo).options(num_cpus=0).remote()
    local = runtime(tmp, "local", X_MODEL, federated=False)
    origin = runtime(tmp, "origin", ORIGIN, federated=True)
    transport = peer_transport()
    sides: dict[str, Callable[[], object]] = {
        "one_to_one": lambda: ray.get(echo.ping.remote(b"x" * 64), timeout=10),
        "local": lambda: local.route_call("x", (TEXT,), kind=CallKind.CAPABILITY),
        "federated": lambda: origin.route_call("x", (TEXT,), kind=CallKind.CAPABILITY),
        "provider": forward(PeerProvider("to-b", "b", transport)),
        "two_hops": forward(PeerProvider("to-a", "a", transport)),
    }
    expected = sides["local"]()
    for name, fn in sides.items():  # warm every path; and each answers what the model says
        for _ in range(20):
            answer = fn()
        if name in ("local", "federated"):
            assert answer == expected, (name, answer)
    layers = {record.layer for record in origin.router.take_records()}
    assert layers == {"federation"}, layers  # every federated call was decided as such
    samples = interleaved(sides, rounds)
    p = {name: pct(s) for name, s in samples.items()}
    one, work = p["one_to_one"][0], p["local"][0]

    def row(what: str, name: str, ratio: str = "", goal: str = "") -> Row:
        p50, p99 = p[name]
        return (what, f"p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms", ratio, goal)

    overhead = p["federated"][0] - work
    met = overhead <= 3 * one
    return [
        row("Ray 1:1 sync call (trivial actor)", "one_to_one", "yardstick"),
        row("the remote work: x on a runtime that has the model", "local", "yardstick"),
        row("federated call: x through the engine to arbiter b", "federated",
            f"{p['federated'][0] / one:.2f}x 1:1"),
        ("federation overhead (federated - remote work)", f"p50 {overhead * 1e3:.2f} ms",
         f"{overhead / one:.2f}x 1:1", f"<= 3x: {'met' if met else 'NOT met'}"),
        row("... the peer provider alone (no engine here)", "provider",
            f"{p['provider'][0] / one:.2f}x 1:1"),
        row("two hops: provider -> arbiter a -> arbiter b", "two_hops",
            f"{p['two_hops'][0] / one:.2f}x 1:1"),
    ]


def print_table(rows: list[Row]) -> None:
    head = ("measure", "value", "ratio", "goal")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    for row in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
