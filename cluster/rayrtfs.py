"""`ray-rtfs`: the capability `remote-rtfs.execute` inside a fleet, a plan step run as a Ray
task on a node a resource chooses (`cluster.steptasks.RayStepExecutor`).

    [delegation.remote_providers.gpu]
    kind = "ray-rtfs"
    resources = ["gpu-node"]   # custom resources the executing node must offer (none: any)
    namespace = "rtfs"         # the fleet whose step policy applies ([delegation.cluster])
    timeout_s = 30             # the longest a step may run there

A `delegation run --cluster ADDR` process is connected to the fleet; without a connection
the provider is unhealthy and a call is unavailable. It takes the same parameters as
`remote-rtfs` (`interface`, `blob`, `args`, `deadline_ms`) and answers the same way: the
step's printed value, read back as an RTFS value. Like every remote provider it is a
`RemoteModel` target, so a sensitive call never goes there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from cluster.steps import StepReply, StepRequest
from delegation.errors import (
    ProviderError,
    ProviderInputError,
    ProviderTimeout,
    ProviderUnavailable,
)
from delegation.providers.base import BaseProvider, Health, ModelResult, effective_timeout
from delegation.providers.remote_rtfs import STEP_PARAMS, read_back, step_fields

RESOURCE_SHARE = 0.001  # what a running step holds of each resource it asks for
CAPABILITY = "remote-rtfs.execute"


class RayRTFSProvider(BaseProvider):
    """Runs RTFS steps as Ray tasks on the nodes that offer `resources`.

    Args:
        id: the provider id.
        namespace: the fleet's Ray namespace (its step policy applies).
        resources: custom resources the executing node must offer.
        timeout_s: the longest a step may run (the call's deadline may cut it).
        grace_s: how much longer than a step's deadline this side waits.
        health_ttl_s: how long a health answer is reused.
        capabilities: default `("remote-rtfs.execute",)`.
        clock: monotonic clock for the health cache; timer: for latency.
    """

    accepted_params = STEP_PARAMS

    def __init__(self, id: str, *, namespace: str, resources: tuple[str, ...] = (),
                 timeout_s: float = 30.0, grace_s: float = 10.0, health_ttl_s: float = 30.0,
                 cost_per_call: float = 0.0, capabilities: tuple[str, ...] = (),
                 clock: Callable[[], float] = time.monotonic,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        super().__init__(id, cost_per_call=cost_per_call,
                         capabilities=capabilities or (CAPABILITY,), timer=timer)
        self.namespace = namespace
        self.resources = {name: RESOURCE_SHARE for name in resources}
        self.timeout_s = timeout_s
        self.grace_s = grace_s
        self.health_ttl_s = health_ttl_s
        self._clock = clock
        self._executor: Any = None
        self._lock = threading.Lock()
        self._health: tuple[float, Health] | None = None

    def infer(self, prompt: str, **params: Any) -> ModelResult:
        """Run the step `prompt` (RTFS source), or the published function the `interface`
        and `blob` parameters name applied to `args`, on a node with the resources."""
        source = self._check(prompt, params)
        fields = step_fields(self.id, source, params, effective_timeout(self.timeout_s))
        request = StepRequest(fields.get("source"), fields.get("interface"), fields.get("blob"),
                              tuple(fields.get("args", ())), fields["deadline_ms"] / 1000.0)
        executor = self._executor_or_unavailable()
        started = self._timer()
        from cluster.steptasks import StepTimeout, StepUnavailable

        try:
            reply = executor.run(request)
        except StepTimeout as err:
            raise ProviderTimeout(self.id, str(err)) from err
        except StepUnavailable as err:
            raise ProviderUnavailable(self.id, str(err)) from err
        if not reply.ok:
            raise self._failed(reply)
        return self._result(reply.value, read_back(reply.value), started)

    def _failed(self, reply: StepReply) -> Exception:
        where = f"the step failed with {reply.error_type}: {reply.message}"
        if reply.status == 504:
            return ProviderTimeout(self.id, where)
        if reply.status == 400:
            return ProviderInputError(self.id, where)
        return ProviderError(self.id, reply.error_type, reply.status, reply.message)

    def _executor_or_unavailable(self) -> Any:
        """The Ray step executor (made on first use, once the process is connected)."""
        import ray

        from cluster.steptasks import RayStepExecutor, StepUnavailable

        if not ray.is_initialized():
            raise ProviderUnavailable(self.id, "not connected to a fleet (run with --cluster)")
        with self._lock:
            if self._executor is None:
                try:
                    self._executor = RayStepExecutor(self.namespace, resources=self.resources,
                                                     grace_s=self.grace_s)
                except StepUnavailable as err:
                    raise ProviderUnavailable(self.id, str(err)) from err
            return self._executor

    def health(self) -> Health:
        """Healthy when connected to a fleet that publishes a step policy (cached for
        `health_ttl_s`)."""
        now = self._clock()
        with self._lock:
            cached = self._health
        if cached is not None and now - cached[0] < self.health_ttl_s:
            return cached[1]
        try:
            self._executor_or_unavailable()
            health = Health(True, f"fleet {self.namespace!r} runs steps")
        except ProviderUnavailable as err:
            health = Health(False, err.reason)
        with self._lock:
            self._health = (now, health)
        return health
