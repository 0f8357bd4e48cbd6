"""The outage latch: a store found down fails at once instead of waiting on the network again.

L4 is a cache: a store that is down must cost a run a few seconds, not a timeout per call.
After the first failure that means "the backend is down" (connection refused or reset, a
timeout, an unreachable endpoint; never a missing blob or a bad signature), every later call
on that store raises `StoreDown` without touching the network, for `down_for_s` seconds of
an injected monotonic timer (None: for the rest of the store object's life). Then one call
tries the backend again: success closes the outage, failure latches it again.

The defaults here bound what a dead store costs: a refused connection fails in milliseconds
(S3 retries it once, after at most a second of backoff); an endpoint that accepts and never
answers costs `read_timeout_s` per attempt, once per latch period.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from storage.errors import StoreDown

DEFAULT_CONNECT_TIMEOUT_S = 2.0
DEFAULT_READ_TIMEOUT_S = 5.0
DEFAULT_DOWN_FOR_S: float | None = 60.0


@dataclass(frozen=True)
class Outage:
    """A store found down: which store, the failure that showed it, and the latch period.

    `since_s` and `until_s` are readings of the store's monotonic timer; `until_s` is None when
    the store stays down for the rest of its life.
    """

    store: str
    cause: str
    since_s: float
    until_s: float | None

    def __str__(self) -> str:
        return f"{self.store} is down: {self.cause}"


def check_down_for_s(down_for_s: float | None) -> float | None:
    """Return `down_for_s` if it is None or a finite number >= 0, else raise `ValueError`."""
    if down_for_s is None:
        return None
    if not isinstance(down_for_s, (int, float)) or not math.isfinite(down_for_s) or down_for_s < 0:
        raise ValueError(f"down_for_s must be None or a finite number >= 0, got {down_for_s!r}")
    return float(down_for_s)


class OutageLatch:
    """Remembers that a store is down, on an injected timer.

    Args:
        store: the store URI, for `Outage` and error messages.
        down_for_s: how long calls fail at once after a failure; None = for the latch's life,
            0 = never latch (every call tries the backend).
        timer: a monotonic clock in seconds (inject a fake one in tests).
    """

    def __init__(
        self,
        store: str,
        *,
        down_for_s: float | None = DEFAULT_DOWN_FOR_S,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.down_for_s = check_down_for_s(down_for_s)
        self.timer = timer
        self._lock = threading.Lock()
        self._outage: Outage | None = None

    @property
    def outage(self) -> Outage | None:
        """The current outage, or None when calls go to the backend."""
        outage = self._outage
        if outage is None or outage.until_s is None or self.timer() < outage.until_s:
            return outage
        return None

    def check(self) -> None:
        """Raise `StoreDown` if the store is latched down; otherwise return at once.

        Raises:
            StoreDown: naming the store and the failure that latched it.
        """
        outage = self.outage
        if outage is not None:
            raise StoreDown(outage.store, outage.cause)

    def trip(self, cause: str) -> StoreDown:
        """Record a failure that shows the backend is down; return the error to raise.

        The first cause is kept while the latch holds (later failures of calls already in
        flight do not extend or rename the outage).
        """
        with self._lock:
            current = self.outage
            if current is None and self.down_for_s != 0:
                now = self.timer()
                until = None if self.down_for_s is None else now + self.down_for_s
                current = self._outage = Outage(self.store, cause, now, until)
        return StoreDown(self.store, cause if current is None else current.cause)

    def reset(self) -> None:
        """Forget the outage: the next call goes to the backend."""
        with self._lock:
            self._outage = None
