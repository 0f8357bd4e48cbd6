"""The Ray shell: the plain classes as actors, Ray's errors as ours. The only module that
calls `ray.remote`.

- `CacheShardActor` wraps a `CacheShard`; `DirectoryActor` wraps a `ClusterDirectory`. Both
  take no CPU (`num_cpus=0`: an actor that holds a CPU for its life starves a small
  cluster), are restarted by Ray when their process dies (`max_restarts=-1`), and have their
  calls retried after a restart (every shard op is idempotent: last writer wins).
- A shard restarted by Ray comes back empty: its constructor (run again by Ray) fetches its
  records from its replicas before Ray delivers it any request, and counts the restart in the
  directory.
- `RayTransport` is the `ShardTransport` over actor handles: one call per shard, all in
  flight together, every wait bounded by the batch's timeout, finding a shard's actor
  included (`cluster.lookup`: Ray's own lookup waits 60 s for a dead head's GCS). A Ray
  error becomes a `ShardUnavailable` (or `ShardTimeout`); a `RayTaskError` is re-raised as
  its cause.
- `start_fleet` creates a fleet's directory and shards in the connected Ray cluster (shards
  spread over the nodes, each node a failure domain); `open_fleet` finds a running one and
  its shards' actors (while the GCS answers).
- `ArbiterActor` wraps an `Arbiter` (`<namespace>/arbiter-<name>`, no CPU, concurrent
  requests, restarted by Ray) and advertises it to the directory every heartbeat;
  `start_arbiter`, `stop_arbiter`; the transport between arbiters is `cluster.peers_ray`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster.arbiter import ArbiterSpec, build_arbiter
from cluster.client import ShardClient, rehydrate
from cluster.directory import ClusterDirectory, parse_description
from cluster.errors import (
    ArbiterExists,
    ArbiterUnavailable,
    ClusterError,
    FleetExists,
    FleetNotFound,
    ShardTimeout,
    ShardUnavailable,
)
from cluster.lookup import lookup_actor
from cluster.peers_ray import RayPeerTransport, transport_for
from cluster.peers_wire import arbiter_actor_name
from cluster.shard import DEFAULT_MAX_ENTRIES, CacheShard
from cluster.topology import ShardInfo, Topology

DIRECTORY_NAME = "rtfs-directory"
SHARD_PREFIX = "rtfs-shard-"
ACTOR_OPTIONS: dict[str, Any] = {"num_cpus": 0, "max_restarts": -1, "max_task_retries": 2}
METRICS_EVERY_S = 1.0
DEFAULT_L2_MAX_ENTRIES = 20_000
"""L2 records per shard by default: each carries a vector (1.5 KiB at 384 dimensions) and is
indexed; the cap keeps L2 traffic from evicting the small L1 plans and outcomes."""


def shard_name(index: int) -> str:
    return f"{SHARD_PREFIX}{index}"


# --- errors -------------------------------------------------------------------------------

def to_cluster_error(name: str, err: BaseException) -> ClusterError:
    """The project's error for a Ray error met while calling actor `name`."""
    if isinstance(err, RayTaskError):
        cause = err.cause
        if isinstance(cause, ClusterError):
            return cause
        return ShardUnavailable(name, f"{type(cause).__name__}: {cause}")
    if isinstance(err, GetTimeoutError):
        return ShardTimeout(name, "no answer in time")
    first_line = (str(err).strip().splitlines() or [""])[0]
    return ShardUnavailable(name, f"{type(err).__name__}: {first_line}")


def ray_get(ref: Any, *, timeout_s: float, name: str) -> Any:
    """`ray.get` with a timeout; Ray's errors raised as ours (a task's own error as itself).

    Raises:
        ShardUnavailable, ShardTimeout: the actor died, is restarting or did not answer.
        ClusterError (or any error the actor raised): the actor's own error.
    """
    try:
        return ray.get(ref, timeout=timeout_s)
    except RayTaskError as err:
        raise (err.cause if isinstance(err.cause, BaseException)
               else to_cluster_error(name, err)) from None
    except RayError as err:
        raise to_cluster_error(name, err) from None


# --- actors -------------------------------------------------------------------------------

class _ShardMetrics:
    """The shard's counters as Ray metrics (exported by Ray's metrics agent), at most once
    per `METRICS_EVERY_S`."""

    def __init__(self, shard: str) -> None:
        from ray.util.metrics import Gauge

        keys = ("shard",)
        self._tags = {"shard": shard}
        self._gauges = {field: Gauge(f"rtfs_shard_{field}", f"cache shard {field}",
                                     tag_keys=keys)
                        for field in ("entries", "hits", "misses", "evictions", "expirations")}
        self._next = 0.0

    def maybe_export(self, shard: CacheShard) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + METRICS_EVERY_S
        stats = shard.stats()
        for field, gauge in self._gauges.items():
            gauge.set(getattr(stats, field), tags=self._tags)


class CacheShardActor:
    """A `CacheShard` as an actor; on a restart it rehydrates before it serves.

    Args:
        name: the shard's (and actor's) name.
        namespace: the fleet's Ray namespace (where its directory and peers live).
        max_entries: the shard's capacity.
        timeout_s: bound on each call to the directory and the peers while rehydrating.
        clock: the shard's wall clock (default `time.time`).
        namespace_max: capacity of single namespaces (`CacheShard`).
    """

    def __init__(self, name: str, namespace: str, max_entries: int = DEFAULT_MAX_ENTRIES,
                 timeout_s: float = 5.0, clock: Callable[[], float] | None = None,
                 namespace_max: Mapping[str, int] | None = None) -> None:
        self.shard = CacheShard(name, max_entries=max_entries, clock=clock or time.time,
                                namespace_max=namespace_max)
        self.restarted = bool(ray.get_runtime_context().was_current_actor_reconstructed)
        self.rehydrated, self.unanswered = 0, list[str]()
        self._metrics = _ShardMetrics(name)
        if self.restarted:
            self._rehydrate(namespace, timeout_s)

    def _rehydrate(self, namespace: str, timeout_s: float) -> None:
        """Ask the directory for the topology, the peers for this shard's records (Ray
        delivers no request before the constructor returns), and count the restart."""
        try:
            directory = ray.get_actor(DIRECTORY_NAME, namespace=namespace)
            topology, _ = parse_description(ray_get(directory.describe.remote(),
                                                    timeout_s=timeout_s, name=DIRECTORY_NAME))
        except (ClusterError, ValueError, TypeError) as err:
            self.unanswered = [f"{DIRECTORY_NAME}: {err}"]
            return
        client = ShardClient(topology, RayTransport(namespace), timeout_s=timeout_s)
        self.rehydrated, self.unanswered = rehydrate(self.shard, client)
        try:
            ray_get(directory.note_restart.remote(self.shard.name), timeout_s=timeout_s,
                    name=DIRECTORY_NAME)
        except ClusterError:
            pass  # the count is for `cache stats`; serving matters more

    def handle(self, request: bytes) -> bytes:
        reply = self.shard.handle(request)
        self._metrics.maybe_export(self.shard)
        return reply

    def info(self) -> dict[str, Any]:
        """Process id, node, and what the last (re)start did."""
        return {"name": self.shard.name, "pid": os.getpid(),
                "node_id": ray.get_runtime_context().get_node_id(),
                "restarted": self.restarted, "rehydrated": self.rehydrated,
                "unanswered": self.unanswered}


class DirectoryActor:
    """A `ClusterDirectory` as an actor (see `cluster.directory`)."""

    def __init__(self, topology: list[Any]) -> None:
        self.directory = ClusterDirectory(Topology.from_list(topology))

    def describe(self) -> list[Any]:
        return self.directory.describe()

    def note_restart(self, shard: str) -> int:
        return self.directory.note_restart(shard)

    def restarts(self) -> dict[str, int]:
        return self.directory.restarts()

    def report(self, reporter: str, counters: Mapping[str, float]) -> None:
        self.directory.report(reporter, counters)

    def totals(self) -> dict[str, float]:
        return self.directory.totals()

    def advertise(self, advert: list[Any]) -> None:
        self.directory.advertise(advert)

    def withdraw(self, arbiter: str) -> bool:
        return self.directory.withdraw(arbiter)

    def arbiters(self) -> list[list[Any]]:
        return self.directory.arbiters()


# --- the transport ------------------------------------------------------------------------

class RayTransport:
    """`ShardTransport` over the named shard actors of one Ray namespace."""

    def __init__(self, namespace: str, handles: Mapping[str, Any] | None = None) -> None:
        self.namespace = namespace
        self._handles: dict[str, Any] = dict(handles or {})

    def _handle(self, name: str, timeout_s: float) -> Any:
        handle = self._handles.get(name)
        if handle is None:
            try:
                handle = lookup_actor(name, self.namespace, timeout_s)
            except ValueError:
                raise ShardUnavailable(name, "no such actor (stopped for good?)") from None
            except TimeoutError as err:
                raise ShardTimeout(name, str(err)) from None
            self._handles[name] = handle
        return handle

    def call_many(self, requests: Mapping[str, bytes], timeout_s: float
                  ) -> dict[str, bytes | ClusterError]:
        if not ray.is_initialized():  # disconnected: never let a late call start a new Ray
            return {name: ShardUnavailable(name, "not connected to Ray") for name in requests}
        out: dict[str, bytes | ClusterError] = {}
        refs = {}
        deadline = time.monotonic() + timeout_s  # finding a shard's actor counts too
        for name, request in requests.items():
            try:
                handle = self._handle(name, deadline - time.monotonic())
                refs[name] = handle.handle.remote(request)
            except ClusterError as err:
                out[name] = err
            except RayError as err:
                out[name] = to_cluster_error(name, err)
        for name, ref in refs.items():  # all in flight: the total wait is the slowest one
            try:
                out[name] = ray.get(ref, timeout=max(0.0, deadline - time.monotonic()))
            except RayError as err:  # a task's own error too: a shard call never raises
                out[name] = to_cluster_error(name, err)
        return out

    def close(self) -> None:
        """Nothing to release: the actors belong to the fleet."""


# --- fleets -------------------------------------------------------------------------------

@dataclass
class Fleet:
    """Handles on one fleet's actors."""

    topology: Topology
    directory: Any
    shards: dict[str, Any]

    @property
    def namespace(self) -> str:
        return self.topology.namespace

    def transport(self) -> RayTransport:
        return RayTransport(self.namespace, self.shards)

    def client(self, *, timeout_s: float = 2.0, **options: Any) -> ShardClient:
        return ShardClient(self.topology, self.transport(), timeout_s=timeout_s, **options)

    def stop(self) -> None:
        """Kill every actor of the fleet for good (they are not restarted)."""
        for handle in [*self.shards.values(), self.directory]:
            try:
                ray.kill(handle, no_restart=True)
            except (RayError, ValueError):
                pass  # already gone


def _alive_nodes() -> list[str]:
    return sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))


def start_fleet(namespace: str, shards: int, replication: int, *,
                max_entries: int = DEFAULT_MAX_ENTRIES, timeout_s: float = 60.0,
                clock: Callable[[], float] | None = None,
                namespace_max: Mapping[str, int] | None = None) -> Fleet:
    """Create `shards` cache shards spread over the nodes of the connected Ray cluster (shard
    `i` pinned to node `i mod nodes`), then the fleet's directory, whose topology labels each
    shard with its node (its failure domain: replicas go to distinct nodes first); wait
    until every one answers. `namespace_max` caps single namespaces in each shard (default:
    `l2` at `DEFAULT_L2_MAX_ENTRIES`, or `max_entries` if lower).

    Raises:
        FleetExists: a fleet already runs in `namespace`.
        ShardUnavailable, ShardTimeout: an actor did not start within `timeout_s`.
    """
    try:
        ray.get_actor(DIRECTORY_NAME, namespace=namespace)
    except ValueError:
        pass
    else:
        raise FleetExists(namespace, "a directory actor is already running")
    deadline = time.monotonic() + timeout_s
    handles: dict[str, Any] = {}
    infos = []
    nodes = _alive_nodes()
    caps = dict(namespace_max if namespace_max is not None
                else {"l2": min(DEFAULT_L2_MAX_ENTRIES, max_entries)})
    for i in range(shards):
        name = shard_name(i)
        # Pinned (not soft: a soft affinity here often lands shards on one node), so Ray
        # restarts a shard on its own node; a shard whose node is lost stays down and
        # traffic goes around it to the replicas on the other nodes.
        spread = (NodeAffinitySchedulingStrategy(nodes[i % len(nodes)], soft=False) if nodes
                  else "DEFAULT")
        handles[name] = ray.remote(CacheShardActor).options(
            name=name, namespace=namespace, scheduling_strategy=spread,
            **ACTOR_OPTIONS).remote(name, namespace, max_entries, min(timeout_s, 5.0), clock,
                                    caps)
        info = ray_get(handles[name].info.remote(), timeout_s=_left(deadline), name=name)
        infos.append(ShardInfo(name, info["node_id"]))
    topology = Topology(namespace, tuple(infos), replication)
    directory: Any = ray.remote(DirectoryActor).options(
        name=DIRECTORY_NAME, namespace=namespace, **ACTOR_OPTIONS).remote(topology.to_list())
    ray_get(directory.describe.remote(), timeout_s=_left(deadline), name=DIRECTORY_NAME)
    return Fleet(topology, directory, handles)


def _left(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())


def open_fleet(address: str, namespace: str, *, timeout_s: float = 5.0) -> Fleet:
    """Handles on the fleet running in `namespace` of the connected Ray cluster.

    Raises:
        FleetNotFound: no fleet runs there.
        ShardUnavailable, ShardTimeout: its directory did not answer.
    """
    try:
        directory = lookup_actor(DIRECTORY_NAME, namespace, timeout_s)
    except ValueError:
        raise FleetNotFound(address, namespace) from None
    except TimeoutError as err:
        raise ShardTimeout(DIRECTORY_NAME, str(err)) from None
    described = ray_get(directory.describe.remote(), timeout_s=timeout_s, name=DIRECTORY_NAME)
    try:
        topology, _ = parse_description(described)
    except (ValueError, TypeError) as err:
        raise ShardUnavailable(DIRECTORY_NAME, f"unreadable description: {err}") from None
    shards = {}
    for name in topology.names:  # found now, while the GCS answers: a run whose head dies
        try:                     # later needs no lookup to reach (or give up on) a shard
            shards[name] = lookup_actor(name, namespace, timeout_s)
        except (ValueError, TimeoutError):
            pass  # looked up again at its first call
    return Fleet(topology, directory, shards)


# --- arbiters -----------------------------------------------------------------------------

ARBITER_OPTIONS: dict[str, Any] = {"num_cpus": 0, "max_restarts": -1, "max_task_retries": 0}
"""No retries: a call in flight when its arbiter died fails at once, and goes to another
peer or its fallback while its deadline still has time."""
CONTROL_SLOTS = 2  # concurrent calls kept free for adverts, stats and stop


def peer_transport(namespace: str | None = None, *, advert_ttl_s: float | None = None
                   ) -> RayPeerTransport:
    """This process's transport to the arbiters of `namespace` (None: its driver's); see
    `cluster.peers_ray.transport_for`."""
    return transport_for(namespace, DIRECTORY_NAME, advert_ttl_s)


class ArbiterActor:
    """An `Arbiter` as an actor: serves peer calls and advertises itself every heartbeat."""

    def __init__(self, spec: ArbiterSpec) -> None:
        self.spec = spec
        self.arbiter, self._close = build_arbiter(
            spec, ray.get_runtime_context().get_node_id(),
            lambda ttl_s: peer_transport(spec.namespace, advert_ttl_s=ttl_s),
            lambda config: _fleet_stores(config, spec.namespace))
        self._stop = threading.Event()
        self._directory: Any = None
        self._advertise()  # listed by the time it answers its first call (start_arbiter)
        threading.Thread(target=self._heartbeat, name="arbiter-heartbeat", daemon=True).start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.arbiter.heartbeat_s):
            self._advertise()

    def _advertise(self) -> None:
        try:
            if self._directory is None:
                self._directory = ray.get_actor(DIRECTORY_NAME, namespace=self.spec.namespace)
            ray_get(self._directory.advertise.remote(self.arbiter.advert().to_list()),
                    timeout_s=max(1.0, self.arbiter.heartbeat_s), name=DIRECTORY_NAME)
        except (ClusterError, ValueError):
            self._directory = None  # not there yet, or restarting: look it up again

    def handle(self, request: bytes) -> bytes:
        return self.arbiter.handle(request)

    def advert(self) -> list[Any]:
        return self.arbiter.advert().to_list()

    def stats(self) -> dict[str, int]:
        return dict(vars(self.arbiter.stats))

    def info(self) -> dict[str, Any]:
        return {"name": self.arbiter.name, "pid": os.getpid(), "node_id": self.arbiter.node}

    def stop(self) -> None:
        """Stop advertising, withdraw from the directory, save state."""
        self._stop.set()
        try:
            if self._directory is not None:
                ray_get(self._directory.withdraw.remote(self.arbiter.name), timeout_s=2.0,
                        name=DIRECTORY_NAME)
        except ClusterError:
            pass  # it drops out after two heartbeats anyway
        self._close()


def _fleet_stores(config: Any, namespace: str) -> tuple[Any, Any, Callable[[], None]]:
    """The fleet's sharded plan store and shared learner for an arbiter, as `delegation run
    --cluster` uses them; local ones (None) when the fleet has no directory."""
    from cluster.config import ClusterConfig, writer_id
    from cluster.learner import SharedLearner
    from cluster.planstore import ShardedPlanStore

    cluster = ClusterConfig.from_sections(config.sections)
    try:
        fleet = open_fleet("this cluster", namespace, timeout_s=cluster.timeout_s)
    except ClusterError:
        return None, None, lambda: None
    writer = writer_id()
    learner = SharedLearner(writer)
    store = ShardedPlanStore(
        fleet.client(timeout_s=cluster.timeout_s), ttl_s=config.cache_ttl_s,
        near_ttl_s=cluster.near_cache_ttl_s, flush_interval_s=cluster.flush_interval_s,
        flush_rows=cluster.flush_rows, max_agents=config.l1_max_entries, writer=writer,
        learner=learner)
    return store, learner, store.close


def start_arbiter(spec: ArbiterSpec, *, max_concurrency: int, timeout_s: float = 60.0
                  ) -> Any:
    """Create the arbiter actor `spec` describes (placed by its resources, no CPU) and wait
    until it answers.

    Raises:
        ArbiterExists: an arbiter of that name already runs in the namespace.
        ArbiterUnavailable: it did not start within `timeout_s`.
    """
    name = arbiter_actor_name(spec.name)
    try:
        ray.get_actor(name, namespace=spec.namespace)
    except ValueError:
        pass
    else:
        raise ArbiterExists(spec.name, spec.namespace)
    handle: Any = ray.remote(ArbiterActor).options(
        name=name, namespace=spec.namespace, get_if_exists=True,
        max_concurrency=max_concurrency + CONTROL_SLOTS, resources=dict(spec.resources),
        **ARBITER_OPTIONS).remote(spec)
    try:
        ray_get(handle.info.remote(), timeout_s=timeout_s, name=name)
    except ClusterError as err:
        raise ArbiterUnavailable(spec.name, f"did not start: {err}") from None
    return handle


def stop_arbiter(handle: Any, timeout_s: float = 10.0) -> None:
    """Stop an arbiter for good: withdraw and save, then kill it (no restart)."""
    try:
        ray_get(handle.stop.remote(), timeout_s=timeout_s, name="arbiter")
    except ClusterError:
        pass  # killed regardless
    try:
        ray.kill(handle, no_restart=True)
    except (RayError, ValueError):
        pass
