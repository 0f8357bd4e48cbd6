"""`delegation cache stats --cluster ADDR [--config F] [--json]`: one row per cache shard.

With `--json`, stdout holds exactly one JSON object, `{"shards": [{"name", "entries",
"hits", "misses", "evictions", "expirations", "restarts", "down"}, ...]}`; Ray's own
messages go to stderr. A fleet that cannot be reached is one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys

from cluster.config import ClusterConfig
from cluster.errors import ClusterError
from cluster.stats import ShardReport


def configure(parser: argparse.ArgumentParser) -> None:
    from cluster.connect import add_fleet_options

    sub = parser.add_subparsers(dest="cache_command", required=True)
    stats = sub.add_parser("stats", help="entries, hits, misses, restarts per cache shard")
    add_fleet_options(stats)


def run(args: argparse.Namespace) -> int:
    from cluster.connect import fleet_address

    cluster, address = fleet_address(args, "cache stats")
    try:
        reports = _reports(address, cluster)
    except ClusterError as err:
        print(f"delegation: cache stats: {err}", file=sys.stderr)
        return 1
    from cluster.stats import as_json, as_table

    if args.json:
        print(json.dumps(as_json(reports)))
    else:
        print(as_table(reports))
    return 0


def _reports(address: str, cluster: ClusterConfig) -> list[ShardReport]:
    from cluster.connect import fleet_session
    from cluster.stats import fleet_report

    with fleet_session(address, cluster) as fleet:
        from cluster.actors import DIRECTORY_NAME, ray_get  # Ray, once connected

        restarts = ray_get(fleet.directory.restarts.remote(), timeout_s=cluster.timeout_s * 2,
                           name=DIRECTORY_NAME)
        return fleet_report(fleet.client(timeout_s=cluster.timeout_s), restarts)
