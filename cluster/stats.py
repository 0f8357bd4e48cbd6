"""What `delegation cache stats --cluster ADDR` reports: one row per shard of the fleet.

`{"shards": [{"name", "entries", "hits", "misses", "evictions", "expirations", "restarts",
"down"}, ...]}`; a shard that does not answer within the timeout is `down` with zero counts
(its counters are gone with its process anyway: a restarted shard counts from zero).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cluster.client import ShardClient
from cluster.errors import ClusterError, WireError
from cluster.shard import ShardStats
from cluster.wire import FAILED

FIELDS = ("name", "entries", "hits", "misses", "evictions", "expirations", "restarts", "down")


@dataclass(frozen=True)
class ShardReport:
    """One shard's line in `cache stats`."""

    name: str
    entries: int = 0
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    expirations: int = 0
    restarts: int = 0
    down: bool = False


def fleet_report(client: ShardClient, restarts: Mapping[str, int]) -> list[ShardReport]:
    """Ask every shard for its counters at once (one request each, in parallel)."""
    replies = client.send({name: [["stats"]] for name in client.topology.names})
    out = []
    for name in client.topology.names:
        restarted = int(restarts.get(name, 0))
        stats = _stats(replies.get(name))
        if stats is None:
            out.append(ShardReport(name, restarts=restarted, down=True))
            continue
        out.append(ShardReport(name, stats.entries, stats.hits, stats.misses, stats.evictions,
                               stats.expirations, restarted))
    return out


def _stats(reply: Any) -> ShardStats | None:
    if reply is None or isinstance(reply, ClusterError) or reply[0][0] == FAILED:
        return None
    try:
        return ShardStats.from_list(reply[0][1])
    except WireError:
        return None


def as_json(reports: Sequence[ShardReport]) -> dict[str, Any]:
    """The `--json` document: exactly `{"shards": [...]}` with the fields of `FIELDS`."""
    return {"shards": [{key: asdict(r)[key] for key in FIELDS} for r in reports]}


def as_table(reports: Sequence[ShardReport]) -> str:
    """The human-readable table."""
    rows = [("shard", "entries", "hits", "misses", "evictions", "expirations", "restarts",
             "state")]
    rows += [(r.name, str(r.entries), str(r.hits), str(r.misses), str(r.evictions),
              str(r.expirations), str(r.restarts), "down" if r.down else "up")
             for r in reports]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                     .rstrip() for row in rows)
