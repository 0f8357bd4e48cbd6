"""`WriteBehind`: rows waiting for the fleet, sent by a background thread.

A facade queues its writes here and returns at once; a thread sends them every
`interval_s`, or as soon as `batch_rows` wait, through the facade's `send`, which returns the
rows no shard took (sent again with the next flush, before newer rows: writes are
idempotent, and their order is kept). A fleet that stays away costs at most `max_pending`
rows: the oldest go first (`on_drop` hears of each).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from cluster.errors import ClusterError

Row = TypeVar("Row")


class WriteBehind(Generic[Row]):
    """A write-behind queue with its flush thread; thread-safe.

    Args:
        send: sends one batch of rows; returns the ones to send again.
        interval_s: longest wait before queued rows are sent.
        batch_rows: rows that make the thread send at once.
        max_pending: rows kept for a fleet that does not answer.
        on_drop: called (outside any lock of this queue) for each row dropped for room.
        background: run the thread (tests of the bare logic flush by hand).
        name: the thread's name.
    """

    def __init__(self, send: Callable[[list[Row]], list[Row]], *, interval_s: float,
                 batch_rows: int, max_pending: int,
                 on_drop: Callable[[Row], None] = lambda row: None, background: bool = True,
                 name: str = "write-behind") -> None:
        if batch_rows < 1 or max_pending < 1:
            raise ValueError("batch_rows and max_pending must be >= 1")
        self._send = send
        self.interval_s, self.batch_rows, self.max_pending = interval_s, batch_rows, max_pending
        self._on_drop = on_drop
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._rows: list[Row] = []
        self._wake = threading.Event()
        self._closed = False
        self.dropped_rows = 0
        self.last_error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
            self._thread.start()

    def add(self, row: Row) -> None:
        """Queue `row` (the oldest rows go when more than `max_pending` wait)."""
        with self._lock:
            self._rows.append(row)
            dropped = self._trim()
            if len(self._rows) >= self.batch_rows:
                self._wake.set()
        for old in dropped:
            self._on_drop(old)

    def _trim(self) -> list[Row]:
        overflow = len(self._rows) - self.max_pending
        if overflow <= 0:
            return []
        dropped, self._rows = self._rows[:overflow], self._rows[overflow:]
        self.dropped_rows += overflow
        return dropped

    def flush(self) -> None:
        """Send every queued row now; the rows no shard took wait for the next flush."""
        with self._flush_lock:
            with self._lock:
                rows, self._rows = self._rows, []
            if not rows:
                return
            again = self._send(rows)
            if again:
                with self._lock:
                    self._rows[:0] = again
                    dropped = self._trim()
                for old in dropped:
                    self._on_drop(old)

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._closed:
                return
            try:
                self.flush()
            except (ClusterError, ValueError, TypeError, OverflowError) as err:
                self.last_error = err  # a row that cannot be encoded; the thread goes on

    def close(self, timeout_s: float) -> None:
        """Stop the thread (waiting at most `timeout_s`) and flush (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.flush()
