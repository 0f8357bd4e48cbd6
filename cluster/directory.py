"""`ClusterDirectory`: what a fleet knows about itself, as a plain class (no Ray).

One per fleet, as the named actor every client asks first: the shard topology (so a client
needs only the address and namespace, never a copy of the server's shard count), how often
each shard was restarted, the counters that runtimes report for the metrics endpoint, and
the arbiters' adverts (`cluster.peers_wire.Advert`): what each can serve, its health, load
and latency. An arbiter advertises every `heartbeat_s`; one not heard from for two
heartbeats is dropped (it died, or its node did), so federation stops choosing it.

Its state is rebuildable: the topology comes from its constructor arguments (Ray passes them
again on a restart); restart counts and reports start over, and runtimes report again;
adverts come back with the arbiters' next heartbeats.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from cluster.peers_wire import Advert
from cluster.topology import Topology

FORMAT = 1
GAUGE = "gauge:"  # see cluster.metrics
MAX_REPORTERS = 10_000  # runtimes whose last report is kept (the oldest go first)
MAX_ARBITERS = 10_000
SILENT_HEARTBEATS = 2  # an arbiter not heard from for this many heartbeats is dropped


class ClusterDirectory:
    """The fleet's topology, shard restart counts and runtime reports; thread-safe.

    Args:
        topology: the fleet's shards.
        clock: wall clock (epoch seconds).
    """

    def __init__(self, topology: Topology, *, clock: Callable[[], float] = time.time) -> None:
        self.topology = topology
        self._clock = clock
        self.started_at = clock()
        self._lock = threading.Lock()
        self._restarts: dict[str, int] = dict.fromkeys(topology.names, 0)
        self._reports: dict[str, dict[str, float]] = {}
        self._adverts: dict[str, Advert] = {}

    def describe(self) -> list[Any]:
        """`[FORMAT, topology as a list, started_at]`: what a client needs to connect."""
        return [FORMAT, self.topology.to_list(), self.started_at]

    def note_restart(self, shard: str) -> int:
        """Count one restart of `shard`; its count so far."""
        with self._lock:
            self._restarts[shard] = self._restarts.get(shard, 0) + 1
            return self._restarts[shard]

    def restarts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._restarts)

    def report(self, reporter: str, counters: Mapping[str, float]) -> None:
        """Keep `reporter`'s cumulative counters (a later report replaces an earlier one,
        so a report sent twice counts once)."""
        clean = {str(k): float(v) for k, v in counters.items()}
        with self._lock:
            self._reports.pop(reporter, None)
            self._reports[reporter] = clean
            while len(self._reports) > MAX_REPORTERS:
                self._reports.pop(next(iter(self._reports)))

    def totals(self) -> dict[str, float]:
        """Every counter summed over the runtimes that reported; a state (a key starting
        with `gauge:`) as the newest report says."""
        out: dict[str, float] = {}
        with self._lock:
            for counters in self._reports.values():  # oldest report first
                for key, value in counters.items():
                    out[key] = value if key.startswith(GAUGE) else out.get(key, 0.0) + value
        return out


    # --- arbiters ---------------------------------------------------------------------------

    def advertise(self, advert: list[Any]) -> None:
        """Keep an arbiter's advert (a newer one replaces it), stamped with when it came.

        Raises:
            WireError: not an advert.
        """
        parsed = Advert.from_list(advert)
        with self._lock:
            self._adverts.pop(parsed.arbiter, None)
            self._adverts[parsed.arbiter] = replace(parsed, seen_at=self._clock())
            while len(self._adverts) > MAX_ARBITERS:
                self._adverts.pop(next(iter(self._adverts)))

    def withdraw(self, arbiter: str) -> bool:
        """Forget `arbiter` at once (it is stopping); whether it was there."""
        with self._lock:
            return self._adverts.pop(arbiter, None) is not None

    def arbiters(self) -> list[list[Any]]:
        """The adverts of the arbiters heard from within their last two heartbeats, by
        name; the silent ones are dropped."""
        now = self._clock()
        with self._lock:
            for name, advert in list(self._adverts.items()):
                if now - advert.seen_at > SILENT_HEARTBEATS * advert.heartbeat_s:
                    del self._adverts[name]
            return [self._adverts[name].to_list() for name in sorted(self._adverts)]


def parse_description(data: Any) -> tuple[Topology, float]:
    """The topology and start time of `describe()`; raises `ValueError`/`TypeError`."""
    fmt, topology, started_at = data
    if fmt != FORMAT:
        raise ValueError(f"directory format {fmt!r}, this side reads {FORMAT}")
    return Topology.from_list(topology), float(started_at)
