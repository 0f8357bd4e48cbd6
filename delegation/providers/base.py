"""The `ModelProvider` protocol and what every provider shares.

A provider runs a prompt on one model, local or remote. The engine finds it through the
`ProviderRegistry` by target (`LocalModel(id)` / `RemoteModel(id)`) or through the
`CapabilityRegistry` by capability id; the conformance suite `delegation.testing.
ModelProviderTests` checks every implementation.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from delegation.errors import ProviderInputError


@dataclass(slots=True)  # not frozen: built per call; frozen init costs ~10x. Read-only.
class ModelResult:
    """What one inference returned.

    Attributes:
        text: the answer as text (a label, a summary, a completion).
        value: the structured answer (e.g. `{"label": ..., "compound": ...}` for sentiment);
            plain str/float/dict/list values only, so it converts to RTFS and msgpack (a
            remote RTFS step answers with the RTFS value itself, which stays as it is).
        latency_s: wall time the call took, measured by the provider's timer.
        cost: what the call cost, in the config's `cost_per_call` unit.
        provider_id: the provider that answered.
    """

    text: str
    value: Any
    latency_s: float
    cost: float
    provider_id: str


@dataclass(slots=True)  # not frozen: built per health check. Read-only.
class Health:
    """Whether a provider can serve now; `reason` says why not (or what was checked)."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


@runtime_checkable
class ModelProvider(Protocol):
    """A model the engine can delegate a call to.

    Attributes:
        id: the provider's id in the config (`remote_providers.<id>` / `local_models.<id>`).
        cost_per_call: the cost charged for one `infer` (>= 0); used to prefer cheaper
            targets and reported in each `ModelResult`.
        capabilities: the capability ids it offers (`summarize`, `translate`, ...).
    """

    @property
    def id(self) -> str: ...

    @property
    def cost_per_call(self) -> float: ...

    @property
    def capabilities(self) -> tuple[str, ...]: ...

    def infer(self, prompt: str, **params: Any) -> ModelResult:
        """Run `prompt` on the model.

        Args:
            prompt: the input text.
            **params: provider-specific options (each provider documents its own).

        Raises:
            ProviderInputError: `prompt` is not a string or a parameter is unknown/invalid.
            ProviderUnavailable: the provider cannot serve now (no key, unreachable,
                not installed); `ProviderTimeout` when it did not answer in time.
            ProviderError: the provider answered with an error.
        """
        ...

    def health(self) -> Health:
        """Say whether `infer` can work now, without spending money (cheap, may be cached)."""
        ...


class BaseProvider:
    """Shared plumbing: identity, argument checks and result timing."""

    accepted_params: Collection[str] = ()

    def __init__(
        self,
        id: str,
        *,
        cost_per_call: float = 0.0,
        capabilities: tuple[str, ...] = (),
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.id = id
        self.cost_per_call = cost_per_call
        self.capabilities = tuple(capabilities)
        self._timer = timer

    def _check(self, prompt: object, params: Mapping[str, Any]) -> str:
        if not isinstance(prompt, str):
            raise ProviderInputError(
                self.id, f"prompt must be a string, not {type(prompt).__name__}"
            )
        unknown = sorted(set(params) - set(self.accepted_params))
        if unknown:
            accepted = ", ".join(sorted(self.accepted_params)) or "none"
            raise ProviderInputError(
                self.id, f"unknown parameter(s) {', '.join(unknown)} (accepted: {accepted})"
            )
        return prompt

    def _result(self, text: str, value: Any, started: float) -> ModelResult:
        latency = max(0.0, self._timer() - started)
        return ModelResult(text, value, latency, self.cost_per_call, self.id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r})"


# A routed call's deadline, for the provider that serves it: set by the executor around
# `infer`, read by providers that wait on I/O, so a call never waits past its run's deadline
# (a context variable: each thread and task sees its own).
_call_deadline: contextvars.ContextVar[Any] = contextvars.ContextVar("call_deadline",
                                                                      default=None)


@contextlib.contextmanager
def call_deadline(deadline: Any) -> Iterator[None]:
    """Run the enclosed provider call under `deadline` (an `rtfs.deadline.Deadline` or None)."""
    token = _call_deadline.set(deadline)
    try:
        yield
    finally:
        _call_deadline.reset(token)


def effective_timeout(timeout_s: float) -> float:
    """`timeout_s`, cut to what is left of the current call's deadline (never below 1 ms)."""
    deadline = _call_deadline.get()
    if deadline is None:
        return timeout_s
    return max(0.001, min(timeout_s, deadline.remaining_s()))
