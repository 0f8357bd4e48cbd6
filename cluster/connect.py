"""`delegation run FILE --cluster ADDR`: a runtime on the fleet's shared caches.

`connect(config, address, environ=...)` joins the fleet and returns the shared state the
runtime is built with (`shared_state`): the sharded plan store (near-cache in front of the
shards), the shared learner and L3 tables (their entries travel in the plan store's batches),
the sharded L2 store, and the federation (calls unavailable here go to the fleet's
arbiters); compiled code is shared through the configured L4 store (S3 or IPFS for a fleet,
each node signing with its own key). It never raises for a fleet it cannot use: the run then
proceeds on local caches, and one warning line says why.

The runtime's Ray driver is set to outlive the head (see `cluster.raynode`): if the head dies
mid-run, shard calls fail within their timeout, the near-cache keeps serving what it knew,
and the run completes on local caches.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from cluster.client import ShardClient
from cluster.config import ClusterConfig, load, writer_id
from cluster.errors import ClusterError
from cluster.l2store import ShardedL2Store
from cluster.l3shared import SharedContextualCache
from cluster.learner import SharedLearner
from cluster.planstore import ShardedPlanStore
from delegation.errors import UsageError
from delegation.extensions import SharedState

REPORT_TIMEOUT_S = 5.0


def check_address(address: str, option: str = "--cluster") -> None:
    """Raise `UsageError` (exit 2) unless `address` is `host:port` or `auto`."""
    from cluster.raynode import split_address

    if address != "auto":
        try:
            split_address(address)
        except ValueError as err:
            raise UsageError(f"{option} {err}") from None


def add_fleet_options(parser: argparse.ArgumentParser) -> None:
    """`--cluster`, `--config` and `--json`: what a command that looks at a fleet takes."""
    parser.add_argument("--cluster", metavar="ADDR",
                        help="the fleet (default: [delegation.cluster] address)")
    parser.add_argument("--config", metavar="F")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def fleet_address(args: argparse.Namespace, command: str) -> tuple[ClusterConfig, str]:
    """The cluster settings and the checked address a fleet command was given.

    Raises:
        UsageError: no address (neither `--cluster` nor `[delegation.cluster] address`), or
            not a `host:port`.
    """
    cluster = ClusterConfig.from_sections(load(args.config).sections)
    address = args.cluster or cluster.address
    if not address:
        raise UsageError(f"{command} needs --cluster ADDR (or [delegation.cluster] address)")
    check_address(address)
    return cluster, address


@contextlib.contextmanager
def fleet_session(address: str, cluster: ClusterConfig) -> Iterator[Any]:
    """The fleet at `address` (its `Fleet` handle), connected for the `with` block only.

    Raises:
        ClusterError: no fleet there, or its directory did not answer in time.
    """
    from cluster import raynode

    try:
        raynode.connect(address, cluster.namespace)
        from cluster.actors import open_fleet

        yield open_fleet(address, cluster.namespace, timeout_s=cluster.timeout_s * 2)
    finally:
        raynode.disconnect()


def connect(config: Any, address: str, *, environ: Mapping[str, str] | None = None
            ) -> SharedState:
    """The fleet's shared state for one runtime, or local-only state and a warning.

    `environ` is the seam's argument; Ray reads the process environment itself, so the
    settings it needs are put there (`cluster.raynode.prepare_environment`).

    Raises:
        UsageError: `address` is not `host:port` (bad input, exit 2); a fleet that cannot
            be used never raises.
    """
    cluster = ClusterConfig.from_sections(config.sections)
    from cluster import raynode

    check_address(address)
    try:
        raynode.connect(address, cluster.namespace, outlive_head=True)
        from cluster.actors import open_fleet

        fleet = open_fleet(address, cluster.namespace, timeout_s=cluster.timeout_s * 2)
    except ClusterError as err:
        raynode.disconnect()
        return SharedState(warnings=[f"{err}; running on local caches only"])
    return _shared(config, cluster, fleet)


def shared_state(config: Any, cluster: ClusterConfig, client: ShardClient, *,
                 writer: str | None = None) -> SharedState:
    """A runtime's shared state over the fleet's shards: L1 plans (with the learner's outcomes
    and the L3 tables in their batches), the learner, the L2 store and the L3 tables (None
    when the config turns L2 or L3 off). `close` flushes and stops them, nothing more.

    Args:
        config: the node's `DelegationConfig` (TTLs and bounds of each tier).
        cluster: `[delegation.cluster]` (near-cache TTL, write-behind).
        client: the shards (one client: the tiers share its breakers).
        writer: this runtime's writer id (default: host, process and a random part).
    """
    writer = writer or writer_id()
    learner = SharedLearner(writer)
    l3 = (SharedContextualCache(writer, config.l3, near_ttl_s=cluster.near_cache_ttl_s)
          if config.l3.enabled else None)
    plans = ShardedPlanStore(
        client, ttl_s=config.cache_ttl_s, near_ttl_s=cluster.near_cache_ttl_s,
        flush_interval_s=cluster.flush_interval_s, flush_rows=cluster.flush_rows,
        max_agents=config.l1_max_entries, writer=writer, learner=learner,
        companions=[l3] if l3 is not None else [])
    l2 = (ShardedL2Store(client, ttl_s=config.l2.ttl_s, near_ttl_s=cluster.near_cache_ttl_s,
                         flush_interval_s=cluster.flush_interval_s,
                         flush_rows=cluster.flush_rows, writer=writer)
          if config.l2.enabled else None)

    def close() -> None:
        plans.close()
        if l2 is not None:
            l2.close()

    return SharedState(plans=plans, learner=learner, l2_store=l2, l3=l3, close=close)


def _shared(config: Any, cluster: ClusterConfig, fleet: Any) -> SharedState:
    from cluster import raynode
    from cluster.actors import DIRECTORY_NAME, ray_get
    from cluster.metrics import run_counters

    state = shared_state(config, cluster, fleet.client(timeout_s=cluster.timeout_s))
    store = state.plans
    warnings = []
    if config.enable_l4_cache and config.l4.store_uri.startswith("memory:"):
        warnings.append("[delegation.l4] store is memory://: compiled code is not shared "
                        "with the fleet")

    def report(runtime: Any) -> None:
        try:
            ray_get(fleet.directory.report.remote(store.writer, run_counters(runtime, store)),
                    timeout_s=REPORT_TIMEOUT_S, name=DIRECTORY_NAME)
        except ClusterError:
            pass  # metrics are best effort: the run's answer does not depend on them

    def close() -> bool:
        state.close()
        return raynode.disconnect()

    return dataclasses.replace(state, warnings=warnings, close=close, report=report,
                               federation=_federation(config))


def _federation(config: Any) -> Any:
    """Calls this node cannot serve go to the fleet's arbiters (`cluster.federation`)."""
    from cluster.actors import peer_transport
    from cluster.federation import Federation, FederationConfig

    settings = FederationConfig.from_sections(config.sections)
    return Federation.for_config(config, peer_transport(advert_ttl_s=settings.advert_ttl_s))
