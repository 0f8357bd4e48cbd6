"""Federation over the fleet's directory: `delegation.federation.Federation` for a node.

    [delegation.federation]
    max_hops = 3          # forwards a call that starts on this node may take
    timeout_s = 10        # a discovered peer's longest wait (a declared one has its own)
    heartbeat_s = 1       # how often an arbiter advertises (silent for two: dropped)
    max_concurrency = 8   # calls an arbiter serves at once
    advert_ttl_s = 1      # how long this node uses the directory's list before asking again

Which peers may be chosen is security's to say: a declared `rtfs-peer` provider by the
allow-list, a discovered one by `[delegation.security] allowed_peers` (checked by the
engine, `delegation.federation.FederatingEngine`).

`AdvertBook` keeps the directory's list of arbiters for `advert_ttl_s` and refreshes it in
the background once it is stale, so a decision waits on the directory only the first time.
`Federation.choose` takes the live, healthy arbiters that advertise the call's symbol and
have not seen the call, and ranks them with the power of two choices: two drawn at random,
the better one (healthy, then least loaded, then fastest) first and the other as its
fallback. That spreads calls without herding them all onto one peer whose advert is a
heartbeat old.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cluster.errors import ClusterError
from cluster.peers import KIND, PeerProvider, PeerTransport
from cluster.peers_wire import Advert
from delegation.extensions import ConfigSection
from delegation.federation import DEFAULT_MAX_HOPS, Hops, PeerChoice
from delegation.schema import Option, OptionType
from delegation.targets import ExecTarget, RemoteModel, peer_name, peer_target

SECTION = "federation"
OPTIONS: Mapping[str, Option] = {
    "max_hops": Option(OptionType.INTEGER, default=DEFAULT_MAX_HOPS, minimum=1, maximum=16,
                       help="forwards a call that starts on this node may take"),
    "timeout_s": Option(OptionType.NUMBER, default=10.0, positive=True, maximum=86_400.0,
                        help="a discovered peer's longest wait for an answer"),
    "heartbeat_s": Option(OptionType.NUMBER, default=1.0, positive=True, maximum=3600.0,
                          help="how often an arbiter advertises"),
    "max_concurrency": Option(OptionType.INTEGER, default=8, minimum=1, maximum=1024,
                              help="calls an arbiter serves at once"),
    "advert_ttl_s": Option(OptionType.NUMBER, default=1.0, positive=True, maximum=3600.0,
                           help="how long the directory's list of arbiters is used"),
}
CONFIG_SECTION = ConfigSection(SECTION, OPTIONS, help="federated calls between arbiters")


@dataclass(frozen=True)
class FederationConfig:
    """The validated `[delegation.federation]` table."""

    max_hops: int = DEFAULT_MAX_HOPS
    timeout_s: float = 10.0
    heartbeat_s: float = 1.0
    max_concurrency: int = 8
    advert_ttl_s: float = 1.0

    @classmethod
    def from_sections(cls, sections: Mapping[str, Mapping[str, Any]]) -> FederationConfig:
        values = sections.get(SECTION)
        return cls(**dict(values)) if values is not None else cls()


class AdvertBook:
    """The directory's list of arbiters, fetched at most every `ttl_s`; thread-safe.

    Args:
        fetch: asks the directory (raises `ClusterError` when it cannot).
        ttl_s: how long a list is used.
        background: refresh a stale list in a thread (the caller gets the stale one at
            once); False: refresh in the caller (tests).
        timer: monotonic clock.
    """

    def __init__(self, fetch: Callable[[], Sequence[Advert]], ttl_s: float = 1.0, *,
                 background: bool = True, timer: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self.ttl_s = ttl_s
        self.background = background
        self._timer = timer
        self._lock = threading.Lock()
        self._adverts: tuple[Advert, ...] = ()
        self._fetched_at: float | None = None
        self._refreshing = False
        self.failures = 0

    def get(self) -> tuple[Advert, ...]:
        """The adverts; never raises (a directory that cannot be asked keeps the last list,
        or none)."""
        with self._lock:
            fetched_at = self._fetched_at
            stale = fetched_at is None or self._timer() - fetched_at >= self.ttl_s
            start = stale and not self._refreshing
            if start:
                self._refreshing = True
        if start:
            if self.background and fetched_at is not None:
                threading.Thread(target=self._refresh, name="advert-book",
                                 daemon=True).start()
            else:
                self._refresh()
        return self._adverts

    def _refresh(self) -> None:
        try:
            found: tuple[Advert, ...] | None = tuple(self._fetch())
        except ClusterError:
            found = None
        with self._lock:
            if found is None:
                self.failures += 1
            else:
                self._adverts = found
            self._fetched_at = self._timer()  # a failed ask waits a ttl before the next
            self._refreshing = False


class Federation:
    """A node's view of its peers: ranks them for a call and provides the discovered ones.

    Args:
        transport: reaches the arbiters and reads their adverts.
        me: this node's arbiter name (never chosen), or "" for a node without one.
        declared: arbiter name -> the id of an `rtfs-peer` provider declared for it (that
            provider, with its own timeout, serves calls federated to it).
        max_hops, timeout_s: for calls that start here and for discovered peers.
        rng: draws the two choices.
        timer: latency clock of the discovered peers' providers.
    """

    def __init__(self, transport: PeerTransport, *, me: str = "",
                 declared: Mapping[str, str] | None = None, max_hops: int = DEFAULT_MAX_HOPS,
                 timeout_s: float = 10.0, rng: random.Random | None = None,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        self.transport = transport
        self.me = me
        self.declared = dict(declared or {})
        self.max_hops = max_hops
        self.timeout_s = timeout_s
        self._rng = rng or random.Random()
        self._timer = timer
        self._providers: dict[str, PeerProvider] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_config(cls, config: Any, transport: PeerTransport, *, me: str = "",
                   rng: random.Random | None = None) -> Federation:
        """The federation a node with `config` (a `DelegationConfig`) runs with."""
        settings = FederationConfig.from_sections(config.sections)
        declared = {str(p.options["arbiter"]): pid for pid, p in config.remote_providers.items()
                    if p.kind == KIND}
        return cls(transport, me=me, declared=declared, max_hops=settings.max_hops,
                   timeout_s=settings.timeout_s, rng=rng)

    def choose(self, symbol: str, hops: Hops) -> Sequence[PeerChoice]:
        if hops.left <= 0:
            return []
        candidates = [a for a in self.transport.adverts()
                      if symbol in a.serves and a.healthy and a.arbiter != self.me
                      and a.arbiter not in hops.visited]
        picked = (self._rng.sample(candidates, 2) if len(candidates) > 2
                  else list(candidates))
        picked.sort(key=_rank)
        return [PeerChoice(self._target(a.arbiter), _why(a, symbol, len(candidates)))
                for a in picked]

    def provider(self, target: ExecTarget) -> PeerProvider | None:
        if not isinstance(target, RemoteModel):
            return None
        name = peer_name(target.id)
        if name is None:
            return None
        with self._lock:
            found = self._providers.get(name)
            if found is None:
                found = self._providers[name] = PeerProvider(
                    target.id, name, self.transport, timeout_s=self.timeout_s,
                    max_hops=self.max_hops, origin=self.me, timer=self._timer)
            return found

    def is_peer(self, target: ExecTarget | None) -> bool:
        return isinstance(target, RemoteModel) and (
            peer_name(target.id) is not None or target.id in self.declared.values())

    def _target(self, arbiter: str) -> RemoteModel:
        declared = self.declared.get(arbiter)
        return RemoteModel(declared) if declared is not None else peer_target(arbiter)


def _rank(advert: Advert) -> tuple[bool, float, float]:
    """Smaller is better: room to serve first, then load, then latency."""
    return (advert.load >= 1.0, advert.load, advert.latency_s)


def _why(advert: Advert, symbol: str, among: int) -> str:
    return (f"arbiter {advert.arbiter} (advertises {symbol}; load {advert.in_flight}/"
            f"{advert.max_concurrency}, p50 {advert.latency_s * 1e3:.1f} ms; "
            f"{among} candidate(s))")
