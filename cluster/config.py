"""`[delegation.cluster]`: how a node reaches its fleet and how `delegation serve` builds one.

    [delegation.cluster]
    address = "127.0.0.1:6379"   # the fleet (`run --cluster` and `cache stats --cluster` win)
    namespace = "rtfs"           # the fleet's Ray namespace: one fleet per namespace
    shards = 3                   # cache shards `delegation serve` starts
    replication = 2              # copies of each entry (default: 2 with >= 2 shards, else 1)
    near_cache_ttl_s = 5         # a fleet plan is trusted this long before asking again
    flush_interval_s = 0.05      # write-behind: send at most this often ...
    flush_rows = 1000            # ... or as soon as this many rows wait
    timeout_s = 2                # longest wait for one batch of shard calls
    max_entries = 200000         # records per shard (least recently used go first)

The table is validated like the rest of `delegation.toml` (key, type, range, line); the
cross-key rule (replication <= shards) is checked when a fleet is built.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cluster.topology import default_replication
from delegation.extensions import ConfigSection
from delegation.schema import Option, OptionType

SECTION = "cluster"
DEFAULT_NAMESPACE = "rtfs"

OPTIONS: Mapping[str, Option] = {
    "address": Option(OptionType.STRING, default="",
                      help="the fleet's Ray GCS address, host:port"),
    "namespace": Option(OptionType.STRING, default=DEFAULT_NAMESPACE,
                        help="the fleet's Ray namespace"),
    "shards": Option(OptionType.INTEGER, default=3, minimum=1, maximum=256,
                     help="cache shards `delegation serve` starts"),
    "replication": Option(OptionType.INTEGER, default=None, minimum=1, maximum=16,
                          help="copies of each entry (default 2 with >= 2 shards)"),
    "near_cache_ttl_s": Option(OptionType.NUMBER, default=5.0, maximum=86_400.0,
                               help="how long a fetched plan is trusted (staleness bound)"),
    "flush_interval_s": Option(OptionType.NUMBER, default=0.05, positive=True, maximum=60.0,
                               help="write-behind interval"),
    "flush_rows": Option(OptionType.INTEGER, default=1000, minimum=1, maximum=1_000_000,
                         help="write-behind batch size"),
    "timeout_s": Option(OptionType.NUMBER, default=2.0, positive=True, maximum=600.0,
                        help="longest wait for one batch of shard calls"),
    "max_entries": Option(OptionType.INTEGER, default=200_000, minimum=1,
                          maximum=100_000_000, help="records per shard"),
    "l2_max_entries": Option(OptionType.INTEGER, default=20_000, minimum=1,
                             maximum=100_000_000,
                             help="L2 answers per shard (each holds an embedding vector)"),
}

CONFIG_SECTION = ConfigSection(SECTION, OPTIONS, help="the Ray fleet (cluster/ package)")


@dataclass(frozen=True)
class ClusterConfig:
    """The validated `[delegation.cluster]` table."""

    address: str = ""
    namespace: str = DEFAULT_NAMESPACE
    shards: int = 3
    replication: int | None = None
    near_cache_ttl_s: float = 5.0
    flush_interval_s: float = 0.05
    flush_rows: int = 1000
    timeout_s: float = 2.0
    max_entries: int = 200_000
    l2_max_entries: int = 20_000

    @classmethod
    def from_sections(cls, sections: Mapping[str, Mapping[str, Any]]) -> ClusterConfig:
        """From `DelegationConfig.sections` (defaults when the table is absent)."""
        values = sections.get(SECTION)
        return cls(**dict(values)) if values is not None else cls()

    def replication_for(self, shards: int) -> int:
        """The replication factor for `shards` shards.

        Raises:
            ValueError: `replication` is set above `shards`.
        """
        if self.replication is None:
            return default_replication(shards)
        if self.replication > shards:
            raise ValueError(f"delegation.cluster.replication = {self.replication} needs at "
                             f"least as many shards, not {shards}")
        return self.replication


def load(path: str | None) -> Any:
    """The configuration a cluster command was given: `--config F`, else the built-in
    default (API keys from this process's environment: commands are the edge)."""
    from delegation.config import default_config, load_config

    return (load_config(path, environ=os.environ) if path is not None
            else default_config(environ=os.environ))


def writer_id() -> str:
    """A writer id for this runtime in the fleet's last-writer-wins: host, process and a
    random part."""
    return f"{socket.gethostname()[:24]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
