"""Reaching the shards: a transport protocol, the in-process transport, and `ShardClient`.

`ShardClient` is what the facades use: it knows the topology (rendezvous placement), keeps a
breaker per shard so that a dead or restarting shard costs one timeout and then nothing
until its cooldown ends, sends one request per shard per batch (in parallel), and decodes
replies. A shard that fails or answers undecodable bytes is reported in the result, never
raised: the facades turn it into a miss.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from cluster.errors import ClusterError, ShardRequestError, ShardUnavailable, WireError
from cluster.shard import CacheShard, parse_dump
from cluster.topology import Placement, Topology
from cluster.wire import FAILED, decode_reply, encode_request

DEFAULT_TIMEOUT_S = 2.0
DEFAULT_COOLDOWN_S = 0.5
MAX_COOLDOWN_S = 10.0

Op = list[Any]


@runtime_checkable
class ShardTransport(Protocol):
    """Moves request bytes to named shards and their reply bytes back."""

    def call_many(self, requests: Mapping[str, bytes], timeout_s: float
                  ) -> dict[str, bytes | ClusterError]:
        """Send each shard its request, in parallel; per shard, the reply bytes or the
        `ShardUnavailable` (or `ShardTimeout`) that kept it from answering within
        `timeout_s`. Never raises for a shard's failure."""
        ...

    def close(self) -> None:
        """Release what the transport holds (idempotent)."""
        ...


class InProcessTransport:
    """Shards in this process (tests, benchmarks, an embedded fleet of one)."""

    def __init__(self, shards: Mapping[str, CacheShard]) -> None:
        self.shards = dict(shards)

    def call_many(self, requests: Mapping[str, bytes], timeout_s: float
                  ) -> dict[str, bytes | ClusterError]:
        out: dict[str, bytes | ClusterError] = {}
        for name, request in requests.items():
            shard = self.shards.get(name)
            out[name] = (shard.handle(request) if shard is not None
                         else ShardUnavailable(name, "no such shard in this process"))
        return out

    def close(self) -> None:
        """Nothing to release: the shards belong to the caller."""


@dataclass
class _Breaker:
    open_until: float = 0.0
    cooldown_s: float = 0.0
    failures: int = 0


@dataclass(frozen=True)
class ClientStats:
    """What the client saw: requests sent, shard failures, undecodable replies."""

    requests: int
    failures: int
    bad_replies: int
    down: tuple[str, ...]


class ShardClient:
    """Batched, breaker-guarded access to the shards of one fleet; thread-safe.

    Args:
        topology: the fleet's shards and replication factor.
        transport: how requests reach the shards.
        timeout_s: longest wait for one batch (every shard of it in parallel).
        cooldown_s: how long a failed shard is skipped before it is tried again (doubles
            with each further failure, up to `MAX_COOLDOWN_S`).
        timer: monotonic clock for the cooldowns.
    """

    def __init__(self, topology: Topology, transport: ShardTransport, *,
                 timeout_s: float = DEFAULT_TIMEOUT_S, cooldown_s: float = DEFAULT_COOLDOWN_S,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.topology = topology
        self.placement = Placement(topology)
        self.transport = transport
        self.timeout_s = timeout_s
        self.cooldown_s = cooldown_s
        self._timer = timer
        self._lock = threading.Lock()
        self._breakers = {name: _Breaker() for name in topology.names}
        self._requests = self._failures = self._bad_replies = 0

    # --- health ---------------------------------------------------------------------------

    def is_up(self, shard: str) -> bool:
        """False while `shard` is in its cooldown after a failure."""
        return self._breakers[shard].open_until <= self._timer()

    def live_order(self, agent: str) -> list[str]:
        """`agent`'s shards in placement order, those in cooldown left out."""
        return [s for s in self.placement.order(agent) if self.is_up(s)]

    def write_targets(self, agent: str) -> list[str]:
        """Where a write of `agent` goes: the first `replication` shards that are up."""
        return self.live_order(agent)[: self.topology.replication]

    def _failed(self, shard: str) -> None:
        with self._lock:
            breaker = self._breakers[shard]
            breaker.failures += 1
            breaker.cooldown_s = min(MAX_COOLDOWN_S, max(self.cooldown_s,
                                                         breaker.cooldown_s * 2))
            breaker.open_until = self._timer() + breaker.cooldown_s
            self._failures += 1

    def _succeeded(self, shard: str) -> None:
        breaker = self._breakers[shard]
        if breaker.failures:
            with self._lock:
                breaker.failures, breaker.cooldown_s, breaker.open_until = 0, 0.0, 0.0

    # --- sending --------------------------------------------------------------------------

    def send(self, batches: Mapping[str, Sequence[Op]]
             ) -> dict[str, list[tuple[int, Any]] | ClusterError]:
        """Send each shard its ops as one request; per shard, the decoded results (one per
        op, `(status, value)`) or the error that kept it from answering."""
        requests = {shard: encode_request(ops) for shard, ops in batches.items() if ops}
        if not requests:
            return {}
        with self._lock:
            self._requests += len(requests)
        replies = self.transport.call_many(requests, self.timeout_s)
        out: dict[str, list[tuple[int, Any]] | ClusterError] = {}
        for shard, ops in batches.items():
            if not ops:
                continue
            out[shard] = self._decode(shard, replies.get(shard), len(ops))
        return out

    def _decode(self, shard: str, reply: bytes | ClusterError | None, expected: int
                ) -> list[tuple[int, Any]] | ClusterError:
        if reply is None:
            reply = ShardUnavailable(shard, "the transport returned no reply")
        if isinstance(reply, ClusterError):
            self._failed(shard)
            return reply
        try:
            results = decode_reply(reply, expected)
        except WireError as err:
            with self._lock:
                self._bad_replies += 1
            self._failed(shard)
            return err
        self._succeeded(shard)
        return results

    def call(self, shard: str, op: Op) -> Any:
        """Send one op to one shard and return its value.

        Raises:
            ShardUnavailable, ShardTimeout, WireError: the shard did not answer usefully.
            ShardRequestError: the shard refused the op.
        """
        result = self.send({shard: [op]})[shard]
        if isinstance(result, ClusterError):
            raise result
        status, value = result[0]
        if status == FAILED:
            raise ShardRequestError(shard, value)
        return value

    def stats(self) -> ClientStats:
        with self._lock:
            down = tuple(s for s in self.topology.names if not self.is_up(s))
            return ClientStats(self._requests, self._failures, self._bad_replies, down)

    def close(self) -> None:
        self.transport.close()


def rehydrate(shard: CacheShard, client: ShardClient) -> tuple[int, list[str]]:
    """Fill `shard` (restarted empty) from its peers: every record whose agent it is a
    replica of, merged last-writer-wins. One request per peer, all in parallel.

    Returns (records applied, "<peer>: <why>" for each peer that gave nothing).
    """
    topology = client.topology.to_list()
    peers = [name for name in client.topology.names if name != shard.name]
    replies = client.send({peer: [["dump", shard.name, topology]] for peer in peers})
    applied, missing = 0, []
    for peer in peers:
        reply = replies.get(peer)
        try:
            if reply is None or isinstance(reply, ClusterError):
                raise reply or ShardUnavailable(peer, "no reply")
            status, value = reply[0]
            if status == FAILED:
                raise ShardRequestError(peer, value)
            records, floors, scopes = parse_dump(value)
        except ClusterError as err:
            missing.append(f"{peer}: {err}")
            continue
        applied += shard.load(records, floors, scopes)
    return applied, missing
