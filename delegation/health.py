"""Availability: circuit breakers per target, combined with each provider's health check.

A breaker opens after `failure_threshold` consecutive failures and refuses calls until
`reset_timeout_s` has passed on its timer; then it lets one trial call through (half-open):
success closes it, failure opens it again. The timer is injected, so tests advance a fake
clock instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from delegation.errors import UnknownProvider
from delegation.providers.base import Health
from delegation.targets import ExecTarget, L4CacheHit, LocalPure


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Counts consecutive failures of one target; thread-safe."""

    def __init__(self, *, failure_threshold: int = 3, reset_timeout_s: float = 30.0,
                 timer: Callable[[], float] = time.monotonic) -> None:
        if failure_threshold < 1 or reset_timeout_s < 0:
            raise ValueError("failure_threshold >= 1 and reset_timeout_s >= 0 required")
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self._timer = timer
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_started: float | None = None  # when the half-open trial call began

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:  # the common case, read without the lock
            return CircuitState.CLOSED
        with self._lock:
            return self._state()

    def _state(self) -> CircuitState:
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self._timer() - self._opened_at >= self.reset_timeout_s:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def allow(self) -> bool:
        """Whether a call may go through now: always when closed, never when open, and in
        half-open state to exactly one trial call at a time. A trial that reports no outcome
        within `reset_timeout_s` (its caller gave up) lets the next call be the trial."""
        with self._lock:
            state = self._state()
            if state is CircuitState.CLOSED:
                return True
            if state is CircuitState.OPEN:
                return False
            now = self._timer()
            if self._trial_started is None or now - self._trial_started >= self.reset_timeout_s:
                self._trial_started = now
                return True
            return False

    def record_success(self) -> None:
        if self._failures == 0 and self._opened_at is None:
            return  # closed and clean: nothing to change (the common case, lock-free)
        with self._lock:
            self._failures, self._opened_at, self._trial_started = 0, None, None

    def record(self, ok: bool) -> None:
        """One outcome: `record_success` or `record_failure`."""
        if ok and self._failures == 0 and self._opened_at is None:
            return  # closed and clean: `record_success`'s own common case, one call less
        self.record_success() if ok else self.record_failure()

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._trial_started = None
            if self._opened_at is not None or self._failures >= self.failure_threshold:
                self._opened_at = self._timer()

    @property
    def failures(self) -> int:
        return self._failures

    @property
    def closed(self) -> bool:
        """Whether the circuit is closed (read without the lock, like `state`)."""
        return self._opened_at is None


class HealthMonitor:
    """`monitor(target) -> Health`: the target's circuit first, then its provider's check."""

    def __init__(self, registry: object, *, failure_threshold: int = 3,
                 reset_timeout_s: float = 30.0,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self._make = lambda: CircuitBreaker(failure_threshold=failure_threshold,
                                            reset_timeout_s=reset_timeout_s, timer=timer)
        self._breakers: dict[ExecTarget, CircuitBreaker] = {}
        self._providers: dict[ExecTarget, Any] = {}  # the registry is fixed for a runtime
        self._lock = threading.Lock()

    def breaker(self, target: ExecTarget) -> CircuitBreaker:
        found = self._breakers.get(target)
        if found is not None:
            return found
        with self._lock:
            return self._breakers.setdefault(target, self._make())

    def __call__(self, target: ExecTarget) -> Health:
        if isinstance(target, (LocalPure, L4CacheHit)):
            return Health(True, "runs in the VM")
        breaker = self.breaker(target)
        state = breaker.state
        if state is CircuitState.OPEN:
            return Health(False, f"circuit open after {breaker.failures} consecutive failures")
        if state is CircuitState.HALF_OPEN and not breaker.allow():
            return Health(False, "circuit half-open: its one trial call is running")
        try:
            provider = self._provider(target)
        except UnknownProvider as err:
            return Health(False, str(err))
        return provider.health()

    def _provider(self, target: ExecTarget) -> Any:
        provider = self._providers.get(target)
        if provider is None:
            provider = self._providers[target] = self.registry.get(target)  # type: ignore[attr-defined]
        return provider

    def steady(self, target: ExecTarget) -> Callable[[], bool]:
        """A check to repeat before reusing a decision that names `target` (see
        `delegation.engine.Decision.stable`): true while the circuit is closed and the
        provider's health check passes, which is when `__call__` says ok, asked without
        touching a half-open breaker's one trial. False: ask the engine again.

        A breaker that opens makes the check false from that moment on.
        """
        if isinstance(target, (LocalPure, L4CacheHit)):
            return _always
        breaker = self.breaker(target)
        try:
            provider = self._provider(target)
        except UnknownProvider:
            return _never

        def check() -> bool:
            return breaker._opened_at is None and provider.health().ok  # `closed`, inline

        return check

    def circuit_ok(self, target: ExecTarget) -> bool:
        """Whether the target's circuit lets calls through: no I/O, no provider check."""
        found = self._breakers.get(target)
        return found is None or found.state is not CircuitState.OPEN

    def record(self, target: ExecTarget, ok: bool) -> None:
        if isinstance(target, (LocalPure, L4CacheHit)):
            return
        self.breaker(target).record(ok)

    def recorder(self, target: ExecTarget) -> Callable[[bool], None]:
        """`record` for `target`, its breaker looked up once (breakers are never replaced)."""
        if isinstance(target, (LocalPure, L4CacheHit)):
            return _ignore
        return self.breaker(target).record


def _always() -> bool:
    return True


def _never() -> bool:
    return False


def _ignore(ok: bool) -> None:
    return None
