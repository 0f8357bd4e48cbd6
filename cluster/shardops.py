"""The ops of the shard wire (`cluster.wire`), each a function of a `CacheShard` and the op's
decoded arguments: arguments are checked here (a malformed one raises `WireError`, which the
shard answers as a refused op), then the plain class does the work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cluster.errors import WireError
from cluster.topology import Placement, Topology
from cluster.vectors import vector_from_bytes
from cluster.wire import (
    Entry,
    Stamp,
    as_int,
    as_list,
    as_namespace,
    as_str,
    entries_from,
    stamp_from,
)

if TYPE_CHECKING:
    from cluster.shard import CacheShard

MAX_NEAREST = 256  # candidates one `nearest` may ask for

Floors = list[tuple[str, str, Stamp]]  # (namespace, agent or scope, stamp)
Dump = tuple[list[tuple[str, Entry]], Floors, Floors]


def _op_get(shard: CacheShard, args: list[Any]) -> Any:
    ns, keys = as_list(args, "get", 2)
    pairs = [tuple(as_str(p, "key") for p in as_list(k, "key", 2)) for k in as_list(keys, "keys")]
    found = shard.get_many(as_namespace(ns), pairs)  # type: ignore[arg-type]
    return [e.to_list() if e is not None else None for e in found]


def _op_agents(shard: CacheShard, args: list[Any]) -> Any:
    ns, agents = as_list(args, "agents", 2)
    names = [as_str(a, "agent") for a in as_list(agents, "agents")]
    return [[e.to_list() for e in live] for live in shard.get_agents(as_namespace(ns), names)]


def _op_put(shard: CacheShard, args: list[Any]) -> Any:
    ns, entries = as_list(args, "put", 2)
    return shard.put_many(as_namespace(ns), entries_from(entries))


def _op_put_evicted(shard: CacheShard, args: list[Any]) -> Any:
    ns, entries = as_list(args, "put_evicted", 2)
    evicted: list[tuple[str, str]] = []
    applied = shard.put_many(as_namespace(ns), entries_from(entries), evicted)
    return [applied, [list(key) for key in evicted]]


def _op_nearest(shard: CacheShard, args: list[Any]) -> Any:
    ns, agent, task, model_id, vector, k = as_list(args, "nearest", 6)
    count = as_int(k, "k")
    if not 0 <= count <= MAX_NEAREST:
        raise WireError("k", f"must be 0..{MAX_NEAREST}")
    exact, found = shard.nearest(
        as_namespace(ns), as_str(agent, "agent"), None if task is None else as_str(task, "task"),
        as_str(model_id, "model id"), vector_from_bytes(vector), count)
    return [exact.to_list() if exact is not None else None,
            [[e.to_list(), cosine] for e, cosine in found]]


def _op_touch(shard: CacheShard, args: list[Any]) -> Any:
    ns, keys = as_list(args, "touch", 2)
    pairs = [tuple(as_str(p, "key") for p in as_list(k, "key", 2)) for k in as_list(keys, "keys")]
    return shard.touch(as_namespace(ns), pairs)  # type: ignore[arg-type]


def _op_keys(shard: CacheShard, args: list[Any]) -> Any:
    (ns,) = as_list(args, "keys", 1)
    return shard.key_hashes(as_namespace(ns))


def _op_invalidate(shard: CacheShard, args: list[Any]) -> Any:
    ns, agent, task, stamp = as_list(args, "invalidate", 4)
    return shard.invalidate(as_namespace(ns), as_str(agent, "agent"), as_str(task, "task"),
                            stamp_from(stamp))


def _op_invalidate_agent(shard: CacheShard, args: list[Any]) -> Any:
    ns, agent, stamp = as_list(args, "invalidate_agent", 3)
    return shard.invalidate_agent(as_namespace(ns), as_str(agent, "agent"), stamp_from(stamp))


def _op_invalidate_scope(shard: CacheShard, args: list[Any]) -> Any:
    ns, scope, stamp = as_list(args, "invalidate_scope", 3)
    dropped = shard.invalidate_scope(as_namespace(ns), as_str(scope, "scope"),
                                     stamp_from(stamp))
    return [list(key) for key in dropped]


def _op_stats(shard: CacheShard, args: list[Any]) -> Any:
    as_list(args, "stats", 0)
    return shard.stats().to_list()


def _op_dump(shard: CacheShard, args: list[Any]) -> Any:
    target, topology = as_list(args, "dump", 2)
    try:
        placement = Placement(Topology.from_list(topology))
    except (ValueError, TypeError) as err:
        raise WireError("topology", str(err)) from None
    entries, floors, scopes = shard.dump_for(as_str(target, "shard"), placement)
    return [[[ns, e.to_list()] for ns, e in entries],
            [[ns, agent, s.to_list()] for ns, agent, s in floors],
            [[ns, scope, s.to_list()] for ns, scope, s in scopes]]


def _op_clear(shard: CacheShard, args: list[Any]) -> Any:
    as_list(args, "clear", 0)
    return shard.clear()


def _op_ping(shard: CacheShard, args: list[Any]) -> Any:
    return shard.name


HANDLERS: dict[str, Callable[[CacheShard, list[Any]], Any]] = {
    "get": _op_get,
    "agents": _op_agents,
    "put": _op_put,
    "put_evicted": _op_put_evicted,
    "nearest": _op_nearest,
    "touch": _op_touch,
    "keys": _op_keys,
    "invalidate_scope": _op_invalidate_scope,
    "invalidate": _op_invalidate,
    "invalidate_agent": _op_invalidate_agent,
    "stats": _op_stats,
    "dump": _op_dump,
    "ping": _op_ping,
    "clear": _op_clear,
}


def parse_dump(value: Any) -> Dump:
    """The records, floors and scope floors of a `dump` result (a dump of two parts, from a
    shard that knows no scopes, has none); raises `WireError` if malformed."""
    parts = as_list(value, "dump")
    if len(parts) not in (2, 3):
        raise WireError("dump", f"expected 2 or 3 parts, got {len(parts)}")
    records = []
    for item in as_list(parts[0], "dump entries"):
        ns, entry = as_list(item, "dump entry", 2)
        records.append((as_namespace(ns), entries_from([entry])[0]))
    return records, _floors(parts[1]), _floors(parts[2] if len(parts) == 3 else [])


def _floors(data: Any) -> Floors:
    out = []
    for item in as_list(data, "dump floors"):
        ns, name, stamp = as_list(item, "floor", 3)
        out.append((as_namespace(ns), as_str(name, "floor name"), stamp_from(stamp)))
    return out
