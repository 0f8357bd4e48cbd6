"""Deadlines: when a run must stop, on a monotonic clock the caller chooses.

A `Deadline` is an absolute time on its own clock (`time.monotonic` unless injected). The VM
checks it cooperatively: at RTFS function calls and inside the loops of builtins whose length
the program controls, reading the clock only once every `CHECK_EVERY` steps, so a run stops
within about a millisecond of its deadline with `DeadlineExceeded` at the position of the
call it was making. A deadline does not cross machines as an absolute time (monotonic clocks
differ between hosts): send `remaining_s()` and rebuild it with `Deadline.after` there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol, TypeVar

from rtfs.errors import DeadlineExceeded

T = TypeVar("T")

CHECK_EVERY = 1000
"""Steps (calls, loop iterations) between two readings of the clock: a VM call costs about a
microsecond, so this keeps the overshoot near a millisecond and the clock cost negligible."""

NEVER = 1 << 62
"""The step budget when there is no deadline: never runs out."""

CHUNK = 1024
"""Items a checked loop handles between two step counts."""


@dataclass(frozen=True, slots=True)
class Deadline:
    """A point in time after which a run stops.

    Args:
        at_s: the deadline, in seconds on `clock`.
        clock: a monotonic clock (injected in tests).
    """

    at_s: float
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def after(cls, timeout_s: float, *, clock: Callable[[], float] = time.monotonic
              ) -> Deadline:
        """The deadline `timeout_s` seconds from now on `clock`."""
        return cls(clock() + timeout_s, clock)

    def remaining_s(self) -> float:
        """Seconds left (negative once passed)."""
        return self.at_s - self.clock()

    def expired(self) -> bool:
        return self.clock() >= self.at_s

    def earliest(self, other: Deadline | None) -> Deadline:
        """The sooner of two deadlines (this one when `other` is None or on another clock
        and not sooner by its own reading)."""
        if other is None or other is self:
            return self
        if other.clock is self.clock:
            return other if other.at_s < self.at_s else self
        return other if other.remaining_s() < self.remaining_s() else self


class Stepper(Protocol):
    """What counts steps for a run: the VM's `Execution`."""

    deadline: Deadline | None

    def tick(self, steps: int = 1) -> None: ...


_current = threading.local()


def current() -> Any:
    """The execution this thread is running RTFS code for (None outside a run)."""
    return getattr(_current, "execution", None)


def swap(execution: Any) -> Any:
    """Make `execution` this thread's current one; returns the previous one to restore."""
    previous = getattr(_current, "execution", None)
    _current.execution = execution
    return previous


def steps(count: int) -> None:
    """Count `count` steps of work towards the deadline of the run on this thread (a no-op
    outside a run); raises DeadlineExceeded once it has passed. For builtins whose work the
    program controls: call it once per chunk of work, not per item."""
    execution = getattr(_current, "execution", None)
    if execution is not None:
        execution.tick(count)


def wait_s(seconds: float, sleep: Callable[[float], None] = time.sleep) -> None:
    """Wait `seconds` for the run on this thread, unless that would take it past its
    deadline: then it stops now, with DeadlineExceeded (nothing after the wait could run
    in time anyway)."""
    execution = getattr(_current, "execution", None)
    deadline = execution.deadline if execution is not None else None
    if deadline is not None and seconds >= deadline.remaining_s():
        raise DeadlineExceeded("deadline exceeded: the run would wait past it")
    sleep(seconds)


def ticker() -> Callable[[int], None] | None:
    """The step counter of the run on this thread, or None when it has no deadline: for
    loops whose steps differ in cost (`tick(len(part))`)."""
    execution = getattr(_current, "execution", None)
    if execution is None or execution.deadline is None:
        return None
    return execution.tick


def checked(items: Iterable[T]) -> Iterator[T]:
    """`items`, counting one step per item towards the deadline of the run on this thread.
    Without a deadline, or for fewer than CHUNK items (a loop that short needs no check:
    the call that made it was counted), this is a plain iterator (no cost per item)."""
    try:
        if len(items) < CHUNK:  # type: ignore[arg-type]
            return iter(items)
    except TypeError:  # no length: an iterator
        pass
    execution: Stepper | None = getattr(_current, "execution", None)
    if execution is None or execution.deadline is None:
        return iter(items)
    return _checked(iter(items), execution)


def _checked(items: Iterator[T], execution: Stepper) -> Iterator[T]:
    while True:
        block = list(islice(items, CHUNK))
        if not block:
            return
        execution.tick(len(block))
        yield from block
