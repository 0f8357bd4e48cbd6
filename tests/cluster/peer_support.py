"""Test support for federation: node configurations and an in-process fleet of arbiters.

`PeerFleet` is a directory (on a fake clock), an `InProcessPeers` transport and any number
of `Arbiter`s built from TOML, each with its own state directory, the way an arbiter actor
builds one; `origin(...)` is a runtime that federates through them (a `delegation run
--cluster` without Ray)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cluster.arbiter import Arbiter
from cluster.directory import ClusterDirectory
from cluster.federation import Federation
from cluster.peers import InProcessPeers, provider_kind
from cluster.topology import ShardInfo, Topology
from delegation.config import DelegationConfig, parse_config
from delegation.extensions import Extensions
from delegation.providers import build_registry
from delegation.runtime import Runtime
from delegation.testing import FakeClock

X_MODEL = """
[delegation.local_models.x-model]
kind = "sentiment-rules"
capabilities = ["x"]
"""
"""The model only some arbiters have: capability `x`, answered by the sentiment rules (so
the ground truth is the rules run directly)."""

ORIGIN = '[delegation.security]\nallowed_peers = ["*"]\n\n[delegation.l2]\nenabled = false\n'
"""A node that may federate to any arbiter; without L2, so that every call reaches a peer
(L2 would answer a repeated call from the peer's earlier answer)."""


def config(tmp_path: Path, name: str, toml: str) -> DelegationConfig:
    """A node's configuration with its own state directory and L4 store."""
    home = tmp_path / name
    home.mkdir(parents=True, exist_ok=True)
    return parse_config(toml + f'\n[delegation.l4]\nstore = "{(home / "l4").as_uri()}"\n',
                        base_dir=home, state_dir=home / "state")


class PeerFleet:
    """A directory, an in-process transport and arbiters, all on one fake clock."""

    def __init__(self, tmp_path: Path, clock: FakeClock | None = None) -> None:
        self.tmp_path = tmp_path
        self.clock = clock or FakeClock(1000.0)
        self.directory = ClusterDirectory(Topology("peers", (ShardInfo("s0"),)),
                                          clock=self.clock)
        self.transport = InProcessPeers(self.directory)
        self.arbiters: dict[str, Arbiter] = {}

    def arbiter(self, name: str, toml: str, **options: Any) -> Arbiter:
        """Start arbiter `name` with this configuration and advertise it."""
        cfg = config(self.tmp_path, name, toml)
        federation = Federation.for_config(cfg, self.transport, me=name)
        base = Runtime(cfg, registry=self.registry(cfg), federation=federation,
                       monotonic=self.clock)
        made = Arbiter(name, base, federation=federation, monotonic=self.clock, **options)
        self.transport.add(made)
        self.arbiters[name] = made
        self.advertise()
        return made

    def registry(self, cfg: DelegationConfig) -> Any:
        """The node's providers, its declared `rtfs-peer` ones reaching this fleet."""
        ext = Extensions()
        ext.add_provider_kind(provider_kind(lambda: self.transport))
        return build_registry(cfg, {}, extensions=ext)

    def advertise(self) -> None:
        """Every arbiter's heartbeat, now."""
        for arbiter in self.arbiters.values():
            self.directory.advertise(arbiter.advert().to_list())

    def origin(self, toml: str, name: str = "origin", **options: Any) -> Runtime:
        """A runtime on a node without an arbiter that federates through the fleet."""
        cfg = config(self.tmp_path, name, toml)
        return Runtime(cfg, registry=self.registry(cfg),
                       federation=Federation.for_config(cfg, self.transport), **options)

    def received(self) -> dict[str, int]:
        return {name: a.stats.received for name, a in self.arbiters.items()}
