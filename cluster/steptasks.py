"""Remote RTFS execution on the Ray cluster: a plan step as a Ray task on the node a resource
chooses (the Ray shell around `cluster.execute.StepRunner`).

- **The fleet's policy, not the caller's.** `delegation serve` publishes how steps run on the
  fleet (its configuration: L4 store, trusted and revoked keys, sensitive patterns, limits) in
  a named actor, `StepPolicyActor` (`rtfs-step-policy` in the fleet's namespace). A step task
  gets that actor's handle; the worker that runs it builds its `StepRunner` from the policy
  once (per worker process and policy actor), on its own node: L4 signatures are verified
  there, with those keys, and the step counts as remote for every security rule.
- **Placement by resource, never holding a CPU.** `RayStepExecutor(namespace,
  resources={"gpu-node": 0.001})` runs each step as a task with those resources and
  `num_cpus=0` (a task that waits for a CPU on a small cluster can wait forever), and no
  retry (a step that failed on a dead node is reported, not run twice behind the caller's
  back). A resource no alive node offers is found out before anything is submitted.
- **Bounded waits.** The step stops itself at its deadline (the VM's); the caller waits that
  long plus `grace_s` (scheduling, a worker starting), then cancels the task and raises
  `StepTimeout`. A Ray error (the node or worker died) is a `StepUnavailable`; a step's own
  failure is a `StepReply` with its error's type, message and HTTP status.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import ray
import xxhash
from ray.exceptions import GetTimeoutError, RayError, RayTaskError

from cluster.errors import ClusterError
from cluster.execute import StepRunner
from cluster.steps import StepReply, StepRequest, StepSettings, failed
from delegation.errors import ConfigError

POLICY_NAME = "rtfs-step-policy"
POLICY_TIMEOUT_S = 10.0
RESOURCES_TTL_S = 5.0  # how long the cluster's resource totals are trusted for a feasibility check


class StepUnavailable(ClusterError, ConnectionError):
    """No node can run the step now: no alive node offers its resources, no fleet publishes
    a step policy, or the node or worker running it died."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(what, reason)
        self.what = what
        self.reason = reason

    def __str__(self) -> str:
        return f"remote step {self.what} unavailable: {self.reason}"


class StepTimeout(StepUnavailable, TimeoutError):
    """A step that did not answer within its deadline and the grace period."""

    def __str__(self) -> str:
        return f"remote step {self.what} timed out: {self.reason}"


TASK_ERRORS: tuple[type[ClusterError], ...] = (StepUnavailable, StepTimeout)


# --- the policy actor and the task -------------------------------------------------------------

class StepPolicyActor:
    """How steps run on this fleet (`StepSettings`), for the workers that run them."""

    def __init__(self, settings: StepSettings) -> None:
        self._settings = settings

    def settings(self) -> StepSettings:
        return self._settings


def publish_policy(settings: StepSettings, namespace: str) -> Any:
    """Start the fleet's step policy actor (replacing one left by an earlier fleet); its
    handle, which the caller keeps: the actor lives while its owner holds a handle (it goes
    away with the `delegation serve` that published it). Raises `StepUnavailable` if it does
    not answer within `POLICY_TIMEOUT_S`."""
    withdraw_policy(namespace)
    handle: Any = ray.remote(StepPolicyActor).options(
        name=POLICY_NAME, namespace=namespace, num_cpus=0, max_restarts=-1,
        max_task_retries=2).remote(settings)
    _get(handle.settings.remote(), POLICY_TIMEOUT_S, "policy")
    return handle


def withdraw_policy(namespace: str, handle: Any = None) -> None:
    """Stop the step policy actor of `namespace` (or `handle`), if there is one."""
    try:
        ray.kill(handle or ray.get_actor(POLICY_NAME, namespace=namespace), no_restart=True)
    except (ValueError, RayError):
        pass  # none, already gone, or its cluster is: nothing left to stop


_runners: dict[str, StepRunner] = {}
_runners_lock = threading.Lock()


def settings_digest(settings: StepSettings) -> str:
    """Names one policy across processes (the runner cache's key)."""
    return xxhash.xxh3_128_hexdigest(repr(settings).encode("utf-8"))


def _runner_for(policy: Any, digest: str) -> StepRunner:
    """This worker's runner for the policy `digest` names (built once, from the policy
    actor's settings, on this node).

    Raises:
        ConfigError: the policy does not validate on this node.
    """
    with _runners_lock:
        runner = _runners.get(digest)
    if runner is None:
        settings = ray.get(policy.settings.remote(), timeout=POLICY_TIMEOUT_S)
        runner = StepRunner.from_settings(settings, origin="ray task",
                                          node=ray.get_runtime_context().get_node_id())
        with _runners_lock:
            runner = _runners.setdefault(settings_digest(settings), runner)
    return runner


def run_step_task(policy: Any, digest: str, request: StepRequest) -> StepReply:
    """The task's body, on the executing node's worker."""
    try:
        runner = _runner_for(policy, digest)
    except ConfigError as err:
        return failed("ConfigError", f"this node cannot use the fleet's step policy: {err}",
                      503, node=ray.get_runtime_context().get_node_id())
    return runner.run(request)


_task: Any = None


def _remote_task() -> Any:
    global _task
    if _task is None:
        _task = ray.remote(run_step_task)
    return _task


# --- the caller's side ---------------------------------------------------------------------

class RayStepExecutor:
    """Runs steps as Ray tasks on the nodes that offer `resources`, under the policy of the
    fleet in `namespace`; thread-safe.

    Args:
        namespace: the fleet's Ray namespace (where `delegation serve` published its policy).
        resources: custom resources a node must offer (e.g. `{"gpu-node": 0.001}`); the
            amounts are what each step holds while it runs (keep them small).
        grace_s: how much longer than a step's deadline the caller waits.
        timer: monotonic clock for the resource check's cache.

    Raises:
        StepUnavailable: no fleet publishes a step policy in `namespace`.
    """

    def __init__(self, namespace: str, *, resources: Mapping[str, float] | None = None,
                 grace_s: float = 10.0, timer: Callable[[], float] = time.monotonic) -> None:
        self.namespace = namespace
        self.resources = dict(resources or {})
        self.grace_s = grace_s
        self._timer = timer
        try:
            self.policy: Any = ray.get_actor(POLICY_NAME, namespace=namespace)
        except ValueError:
            raise StepUnavailable(namespace, "no step policy in this namespace (start the "
                                             "fleet with `delegation serve`)") from None
        settings: StepSettings = _get(self.policy.settings.remote(), POLICY_TIMEOUT_S, "policy")
        self.default_deadline_s: float = settings.limits.default_deadline_s
        self.digest: str = settings_digest(settings)
        self._checked: tuple[float, str | None] | None = None
        self._options: dict[str, Any] = {"num_cpus": 0, "max_retries": 0,
                                         "resources": self.resources}

    def run(self, request: StepRequest) -> StepReply:
        """Run one step on a node with the resources; its reply.

        Raises:
            StepUnavailable: no alive node offers the resources, or the node or worker
                running the step died.
            StepTimeout: no answer within the step's deadline and `grace_s`.
        """
        self._check_resources()
        ref = _remote_task().options(**self._options).remote(self.policy, self.digest, request)
        wait_s = (request.deadline_s or self.default_deadline_s) + self.grace_s
        try:
            return _get(ref, wait_s, self._where())
        except StepTimeout:
            ray.cancel(ref, force=True)
            raise

    def _where(self) -> str:
        return f"on {self.resources}" if self.resources else "on any node"

    def _check_resources(self) -> None:
        now = self._timer()
        if self._checked is None or now - self._checked[0] > RESOURCES_TTL_S:
            self._checked = (now, self._missing(ray.cluster_resources()))
        if self._checked[1] is not None:
            raise StepUnavailable(self._where(), self._checked[1])

    def _missing(self, totals: Mapping[str, float]) -> str | None:
        for name, amount in self.resources.items():
            if totals.get(name, 0.0) < amount:
                return f"no alive node offers {amount:g} of resource {name!r}"
        return None


def _get(ref: Any, timeout_s: float, what: str) -> Any:
    """`ray.get` with a timeout; Ray's errors as ours, a task's own error as itself."""
    try:
        return ray.get(ref, timeout=timeout_s)
    except GetTimeoutError:
        raise StepTimeout(what, f"no answer within {timeout_s:g} s") from None
    except RayTaskError as err:
        cause = err.cause
        if isinstance(cause, BaseException) and not isinstance(cause, RayError):
            raise cause from None
        raise StepUnavailable(what, _first_line(err)) from None
    except RayError as err:
        raise StepUnavailable(what, f"{type(err).__name__}: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
