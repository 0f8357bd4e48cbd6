"""Collections and the higher-order functions over them.

Sequence functions accept vectors, lists, maps (as [key value] entries), sets, strings (as
one-character strings) and nil (as empty), and return vectors.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

from rtfs.deadline import CHUNK, checked, steps, ticker
from rtfs.errors import RtfsIndexError, RtfsTypeError, RtfsValueError
from rtfs.ops import get_or
from rtfs.printer import preview
from rtfs.stdlib import builtin, make_builtin
from rtfs.stdlib.core import expect_int
from rtfs.values import (
    Map,
    RList,
    make_set,
    map_assoc,
    map_dissoc,
    map_key,
    rtfs_equal,
    set_items,
    truthy,
    type_name,
    unbox,
)

MAX_RANGE = 10_000_000
MAX_ITEMS = 1 << 26
"""The most items `concat`, `into` and `conj` put in one vector or list (64 Mi): a program
that doubles a collection in a loop stops with an RTFS error instead of taking the machine's
memory."""


def _check_items(name: str, total: int) -> None:
    if total > MAX_ITEMS:
        raise RtfsValueError(f"{name} would build a collection of {total} items "
                             f"(at most {MAX_ITEMS})")


def as_seq(fn: str, coll: Any) -> tuple[Any, ...] | RList | str:
    """`coll` as something indexable in sequence order."""
    kind = type(coll)
    if kind is tuple or kind is RList or kind is str:
        return coll
    if coll is None:
        return ()
    if isinstance(coll, dict):
        return tuple(coll.items())
    if kind is frozenset:
        return tuple(set_items(coll))
    raise RtfsTypeError(f"{fn} expects a collection, got {type_name(coll)}")


def _map_arg(fn: str, value: Any) -> Map:
    if value is None:
        return Map()
    if isinstance(value, Map):
        return value
    raise RtfsTypeError(f"{fn} expects a map, got {type_name(value)}")


# -- construction -----------------------------------------------------------------------------
@builtin("vector")
def vector(*xs: Any) -> tuple[Any, ...]:
    return xs


@builtin("vec")
def vec(coll: Any) -> tuple[Any, ...]:
    return tuple(as_seq("vec", coll))


@builtin("list")
def list_(*xs: Any) -> RList:
    return RList(xs)


@builtin("hash-map")
def hash_map(*kvs: Any) -> Map:
    if len(kvs) % 2:
        raise RtfsValueError("hash-map takes key/value pairs")
    return Map(zip(kvs[0::2], kvs[1::2]))


@builtin("set")
def set_(coll: Any) -> frozenset:
    return make_set(as_seq("set", coll))


@builtin("range")
def range_(a: Any, b: Any = None, step: Any = 1) -> tuple[int, ...]:
    start, stop = (0, a) if b is None else (a, b)
    for value in (start, stop, step):
        if type(value) is not int:
            raise RtfsTypeError(f"range expects integers, got {type_name(value)}")
    if step == 0:
        raise RtfsValueError("range step of 0")
    count = max(0, (stop - start + step - (1 if step > 0 else -1)) // step)
    if count > MAX_RANGE:  # (len() of a huge range overflows a C integer)
        raise RtfsValueError(f"range of more than {MAX_RANGE} items")
    result = range(start, stop, step)
    if count <= _RANGE_PART:
        return tuple(result)
    items: list[int] = []
    for first in range(0, count, _RANGE_PART):  # a long range counts towards the deadline
        part = result[first:first + _RANGE_PART]
        steps(len(part))
        items.extend(part)
    return tuple(items)


_RANGE_PART = 64 * CHUNK


# -- access -----------------------------------------------------------------------------------
@builtin("get")
def get(coll: Any, key: Any, default: Any = None) -> Any:
    return get_or(coll, key, default)


@builtin("get-in")
def get_in(coll: Any, keys: Any, default: Any = None) -> Any:
    for key in checked(as_seq("get-in", keys)):
        coll = get_or(coll, key, _ABSENT)
        if coll is _ABSENT:
            return default
    return coll


_ABSENT = object()


@builtin("nth")
def nth(coll: Any, index: Any, default: Any = _ABSENT) -> Any:
    seq = as_seq("nth", coll)
    if type(index) is int and 0 <= index < len(seq):
        return seq[index]
    if default is not _ABSENT:
        return default
    raise RtfsIndexError(f"nth index {preview(index, 40)} outside 0..{len(seq) - 1}")


@builtin("count")
def count(coll: Any) -> int:
    if coll is None:
        return 0
    if type(coll) in (tuple, RList, str, frozenset) or isinstance(coll, dict):
        return len(coll)
    raise RtfsTypeError(f"count expects a collection or string, got {type_name(coll)}")


@builtin("first")
def first(coll: Any) -> Any:
    seq = as_seq("first", coll)
    return seq[0] if seq else None


@builtin("second")
def second(coll: Any) -> Any:
    seq = as_seq("second", coll)
    return seq[1] if len(seq) > 1 else None


@builtin("last")
def last(coll: Any) -> Any:
    seq = as_seq("last", coll)
    return seq[-1] if seq else None


@builtin("rest")
def rest(coll: Any) -> Any:
    """Everything after the first item; a string stays a string and a list a list."""
    seq = as_seq("rest", coll)
    if type(seq) is str or type(seq) is RList:
        return type(seq)(seq[1:])
    return tuple(seq[1:])


@builtin("next")
def next_(coll: Any) -> Any:
    tail = rest(coll)
    return tail if tail else None


@builtin("empty?")
def is_empty(coll: Any) -> bool:
    return count(coll) == 0


@builtin("contains?")
def contains(coll: Any, key: Any) -> bool:
    """Whether `key` is a key of a map, a member of a set, an index of a vector, or (for a
    string in a string) a part of it."""
    if type(coll) is str and type(key) is str:
        return key in coll
    return get_or(coll, key, _ABSENT) is not _ABSENT


@builtin("keys")
def keys(m: Any) -> tuple[Any, ...]:
    return tuple(_map_arg("keys", m).keys())


@builtin("vals")
def vals(m: Any) -> tuple[Any, ...]:
    return tuple(_map_arg("vals", m).values())


@builtin("key")
def key(entry: Any) -> Any:
    return _entry("key", entry)[0]


@builtin("val")
def val(entry: Any) -> Any:
    return _entry("val", entry)[1]


def _entry(fn: str, entry: Any) -> tuple[Any, Any]:
    if type(entry) is tuple and len(entry) == 2:
        return entry
    raise RtfsTypeError(f"{fn} expects a map entry [key value], got {preview(entry, 40)}")


# -- "modification" (always a new value) --------------------------------------------------------
@builtin("conj")
def conj(coll: Any, *xs: Any) -> Any:
    """Add items at the end of a vector or list (as the specification has it for lists too:
    (conj (1 2) 3) is (1 2 3)), to a set, or entries to a map; nil is an empty list."""
    if coll is None:
        return RList(xs)
    if type(coll) is tuple or type(coll) is RList:
        _check_items("conj", len(coll) + len(xs))
        return coll + xs if type(coll) is tuple else RList(tuple(coll) + xs)
    if type(coll) is frozenset:
        return coll | make_set(xs)
    if isinstance(coll, Map):
        result = coll
        for x in checked(xs):
            pairs = x.items() if isinstance(x, Map) else [_entry("conj", x)]
            result = map_assoc(result, pairs)
        return result if xs else Map(coll)
    raise RtfsTypeError(f"conj expects a collection, got {type_name(coll)}")


@builtin("cons")
def cons(x: Any, coll: Any) -> Any:
    """`x` in front of a collection: a list stays a list, anything else gives a vector."""
    if type(coll) is str and type(x) is str:
        return x + coll
    if type(coll) is RList:
        return RList((x, *coll))
    return (x, *as_seq("cons", coll))


@builtin("assoc")
def assoc(coll: Any, k: Any, v: Any, *kvs: Any) -> Any:
    if len(kvs) % 2:
        raise RtfsValueError("assoc takes key/value pairs")
    pairs = [(k, v), *zip(kvs[0::2], kvs[1::2])]
    if type(coll) is tuple:
        items = list(coll)
        for index, value in checked(pairs):
            if type(index) is not int or not 0 <= index <= len(items):
                raise RtfsIndexError(f"assoc index {preview(index, 30)} outside 0..{len(items)}")
            if index == len(items):
                items.append(value)
            else:
                items[index] = value
        return tuple(items)
    return map_assoc(_map_arg("assoc", coll), checked(pairs))


@builtin("dissoc")
def dissoc(m: Any, *ks: Any) -> Map:
    return map_dissoc(_map_arg("dissoc", m), checked(ks))


@builtin("assoc-in")
def assoc_in(coll: Any, path: Any, value: Any) -> Any:
    keys_ = as_seq("assoc-in", path)
    if not keys_:
        return value
    inner = get_or(coll, keys_[0], None)
    return assoc(coll, keys_[0], assoc_in(inner, keys_[1:], value))


@builtin("update", needs_vm=True)
def update(ex: Any, coll: Any, k: Any, f: Any, *args: Any) -> Any:
    return assoc(coll, k, ex.call(f, [get_or(coll, k, None), *args]))


@builtin("update-in", needs_vm=True)
def update_in(ex: Any, coll: Any, path: Any, f: Any, *args: Any) -> Any:
    keys_ = as_seq("update-in", path)
    if not keys_:
        return ex.call(f, [coll, *args])
    inner = get_or(coll, keys_[0], None)
    return assoc(coll, keys_[0], update_in(ex, inner, keys_[1:], f, *args))


@builtin("merge")
def merge(*maps: Any) -> Any:
    if all(m is None for m in maps):
        return None
    result = Map()
    for m in checked(maps):
        result = map_assoc(result, checked(_map_arg("merge", m).items()))
    return result


@builtin("select-keys")
def select_keys(m: Any, ks: Any) -> Map:
    source = _map_arg("select-keys", m)
    return Map((k, source[k]) for k in checked(as_seq("select-keys", ks)) if k in source)


@builtin("rename-keys")
def rename_keys(m: Any, renames: Any) -> Map:
    source, table = _map_arg("rename-keys", m), _map_arg("rename-keys", renames)
    return Map((table.get(k, k), v) for k, v in checked(source.items()))


@builtin("zipmap")
def zipmap(ks: Any, vs: Any) -> Map:
    return Map(zip(as_seq("zipmap", ks), as_seq("zipmap", vs)))


@builtin("into")
def into(to: Any, source: Any) -> Any:
    if type(to) is tuple or type(to) is RList:  # refused before the items are gathered
        sized = isinstance(source, (tuple, RList, str, frozenset, dict))
        _check_items("into", len(to) + (len(source) if sized else 0))
    return conj(to, *as_seq("into", source)) if to is not None else RList(as_seq("into", source))


@builtin("empty")
def empty(coll: Any) -> Any:
    if isinstance(coll, Map):
        return Map()
    empties: dict[type, Any] = {tuple: (), RList: RList(), frozenset: frozenset(), str: ""}
    return empties.get(type(coll))


# -- slicing and reordering -----------------------------------------------------------------------
@builtin("concat")
def concat(*colls: Any) -> tuple[Any, ...]:
    seqs = [as_seq("concat", c) for c in checked(colls)]
    total = sum(len(s) for s in seqs)
    _check_items("concat", total)
    tick = ticker()
    if tick is not None:
        tick(total)
    return tuple(chain.from_iterable(seqs))


@builtin("subvec")
def subvec(v: Any, start: Any, end: Any = None) -> tuple[Any, ...]:
    seq = as_seq("subvec", v)
    stop = len(seq) if end is None else expect_int("subvec", end)
    if not 0 <= expect_int("subvec", start) <= stop <= len(seq):
        raise RtfsIndexError(f"subvec range {preview(start, 30)}..{preview(stop, 30)} "
                             f"outside 0..{len(seq)}")
    return tuple(seq[start:stop])


@builtin("take")
def take(n: Any, coll: Any) -> tuple[Any, ...]:
    return tuple(as_seq("take", coll)[: max(expect_int("take", n), 0)])


@builtin("drop")
def drop(n: Any, coll: Any) -> tuple[Any, ...]:
    return tuple(as_seq("drop", coll)[max(expect_int("drop", n), 0):])


@builtin("reverse")
def reverse(coll: Any) -> tuple[Any, ...]:
    return tuple(reversed(as_seq("reverse", coll)))


@builtin("distinct")
def distinct(coll: Any) -> tuple[Any, ...]:
    seen: set[Any] = set()
    result = []
    for x in checked(as_seq("distinct", coll)):
        marker = map_key(x)  # distinct as RTFS `=` sees it: 1 and 1.0 alike, true apart
        if marker not in seen:
            seen.add(marker)
            result.append(x)
    return tuple(result)


@builtin("flatten")
def flatten(coll: Any) -> tuple[Any, ...]:
    out: list[Any] = []
    stack = [checked(as_seq("flatten", coll))]
    while stack:
        for x in stack[-1]:
            if type(x) in (tuple, RList):
                stack.append(checked(x))
                break
            out.append(x)
        else:
            stack.pop()
    return tuple(out)


@builtin("partition")
def partition(n: Any, step_or_coll: Any, coll: Any = _ABSENT) -> tuple[tuple[Any, ...], ...]:
    step, coll = (n, step_or_coll) if coll is _ABSENT else (step_or_coll, coll)
    if expect_int("partition", n) <= 0 or expect_int("partition", step) <= 0:
        raise RtfsValueError("partition sizes must be positive")
    seq = as_seq("partition", coll)
    tick = ticker()
    parts = []
    for i in range(0, len(seq) - n + 1, step):
        if tick is not None:
            tick(n)
        parts.append(tuple(seq[i:i + n]))
    return tuple(parts)


# -- higher-order -----------------------------------------------------------------------------
@builtin("map", needs_vm=True)
def map_(ex: Any, f: Any, coll: Any, *colls: Any) -> tuple[Any, ...]:
    if not colls:
        items = as_seq("map", coll)
        call = ex.caller(f, 1)
        return tuple([call(x) for x in items])
    seqs = [as_seq("map", c) for c in (coll, *colls)]
    call = ex.caller(f, len(seqs))
    return tuple(call(*items) for items in zip(*seqs))


@builtin("map-indexed", needs_vm=True)
def map_indexed(ex: Any, f: Any, coll: Any) -> tuple[Any, ...]:
    items = as_seq("map-indexed", coll)
    call = ex.caller(f, 2)
    return tuple([call(i, x) for i, x in enumerate(items)])


@builtin("mapcat", needs_vm=True)
def mapcat(ex: Any, f: Any, coll: Any) -> tuple[Any, ...]:
    return concat(*map_(ex, f, coll))


@builtin("filter", needs_vm=True)
def filter_(ex: Any, pred: Any, coll: Any) -> tuple[Any, ...]:
    items = as_seq("filter", coll)
    call = ex.caller(pred, 1)
    return tuple([x for x in items if (r := call(x)) is not None and r is not False])


@builtin("remove", needs_vm=True)
def remove(ex: Any, pred: Any, coll: Any) -> tuple[Any, ...]:
    items = as_seq("remove", coll)
    call = ex.caller(pred, 1)
    return tuple([x for x in items if (r := call(x)) is None or r is False])


@builtin("keep", needs_vm=True)
def keep(ex: Any, f: Any, coll: Any) -> tuple[Any, ...]:
    items = as_seq("keep", coll)
    call = ex.caller(f, 1)
    results = (call(x) for x in items)
    return tuple(r for r in results if r is not None)


@builtin("reduce", needs_vm=True)
def reduce_(ex: Any, f: Any, init_or_coll: Any, coll: Any = _ABSENT) -> Any:
    if coll is _ABSENT:
        items = as_seq("reduce", init_or_coll)
        if not items:
            return ex.call(f, [])
        acc, items = items[0], items[1:]
    else:
        acc, items = init_or_coll, as_seq("reduce", coll)
    call = ex.caller(f, 2)
    for x in items:
        acc = call(acc, x)
    return acc


@builtin("apply", needs_vm=True)
def apply(ex: Any, f: Any, *args: Any) -> Any:
    if not args:
        return ex.call(f, [])
    return ex.call(f, [*args[:-1], *as_seq("apply", args[-1])])


@builtin("some", needs_vm=True)
def some(ex: Any, pred: Any, coll: Any) -> Any:
    items = as_seq("some", coll)
    call = ex.caller(pred, 1)
    for x in items:
        result = call(x)
        if truthy(result):
            return result
    return None


@builtin("every?", needs_vm=True)
def every(ex: Any, pred: Any, coll: Any) -> bool:
    items = as_seq("every?", coll)
    call = ex.caller(pred, 1)
    return all(truthy(call(x)) for x in items)


@builtin("group-by", needs_vm=True)
def group_by(ex: Any, f: Any, coll: Any) -> Map:
    groups: dict[Any, list[Any]] = {}
    items = as_seq("group-by", coll)
    call = ex.caller(f, 1)
    for x in items:
        groups.setdefault(map_key(call(x)), []).append(x)
    return Map([(unbox(k), tuple(v)) for k, v in groups.items()])


@builtin("partition-by", needs_vm=True)
def partition_by(ex: Any, f: Any, coll: Any) -> tuple[tuple[Any, ...], ...]:
    runs: list[list[Any]] = []
    previous: Any = _ABSENT
    items = as_seq("partition-by", coll)
    call = ex.caller(f, 1)
    for x in items:
        marker = call(x)
        if previous is _ABSENT or not rtfs_equal(marker, previous):
            runs.append([])
        runs[-1].append(x)
        previous = marker
    return tuple(tuple(run) for run in runs)


@builtin("frequencies")
def frequencies(coll: Any) -> Map:
    counts: dict[Any, int] = {}
    for x in checked(as_seq("frequencies", coll)):
        key = map_key(x)
        counts[key] = counts.get(key, 0) + 1
    return Map([(unbox(k), n) for k, n in counts.items()])


@builtin("comp")
def comp(*fns: Any) -> Any:
    def composed(ex: Any, *args: Any) -> Any:
        if not fns:
            return args[0] if args else None
        result = ex.call(fns[-1], list(args))
        for f in reversed(fns[:-1]):
            result = ex.call(f, [result])
        return result

    return make_builtin("comp", composed, needs_vm=True, wraps=fns)


@builtin("partial")
def partial(f: Any, *bound: Any) -> Any:
    return make_builtin("partial", lambda ex, *args: ex.call(f, [*bound, *args]), needs_vm=True,
                        wraps=(f,))


@builtin("constantly")
def constantly(value: Any) -> Any:
    return make_builtin("constantly", lambda *args: value)
