"""The iteration forms that call a compiled body repeatedly: `loop`/`recur`, `for` and
`dotimes`.

Bytecode only jumps forward (which is what lets the verifier prove a frame cannot spin), so a
loop is a function called again and again from here: `recur` in its tail position returns a
`Recur` holding the next values, and `run_loop` calls the body with them until it returns
anything else. These loops run as long as the program says; a deadline check belongs in
each of them (they are the only loops of RTFS besides those of the higher-order builtins).
"""

from __future__ import annotations

from typing import Any

from rtfs.errors import RtfsTypeError, RtfsValueError
from rtfs.stdlib.seqs import as_seq
from rtfs.values import Map, RList, make_set, type_name


class Recur:
    """What `(recur v ...)` returns to the loop around it: the values of the next round."""

    __slots__ = ("args",)

    def __init__(self, args: list[Any]) -> None:
        self.args = args

    def __repr__(self) -> str:
        return "#<recur>"


def run_loop(ex: Any, body: Any, args: list[Any]) -> Any:
    """Call `body` with `args`, then with the values of each `recur` it returns."""
    while True:
        result = ex.call_direct(body, args)
        if type(result) is not Recur:
            return result
        args = list(result.args)


def run_for(ex: Any, body: Any, coll: Any) -> tuple[Any, ...]:
    """`(for [x coll ...] ...)` at one level: `body` returns the vector of results for one
    item, or nil to stop (`:while` no longer holds)."""
    out: list[Any] = []
    for item in as_seq("for", coll):
        produced = ex.call_direct(body, [item])
        if produced is None:
            break
        out.extend(produced)
    return tuple(out)


def run_dotimes(ex: Any, body: Any, count: Any) -> None:
    """`(dotimes [i n] ...)`: `body` called with 0 .. n-1, for its effects."""
    if type(count) is not int:
        raise RtfsTypeError(f"dotimes takes an integer count, got {type_name(count)}")
    for index in range(count):
        ex.call_direct(body, [index])


def build_quasi(kind: str, spliced: tuple[bool, ...], parts: list[Any]) -> Any:
    """The collection a quasiquoted form builds from its parts (spliced parts are
    sequences whose items are inserted)."""
    items: list[Any] = []
    for part, splice in zip(parts, spliced):
        if splice:
            items.extend(as_seq("~@", part))
        else:
            items.append(part)
    if kind == "list":
        return RList(items)
    if kind == "vector":
        return tuple(items)
    if kind == "set":
        return make_set(items)
    if len(items) % 2:
        raise RtfsValueError("a quasiquoted map needs an even number of forms")
    return Map(list(zip(items[0::2], items[1::2])))
