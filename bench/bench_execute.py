"""Remote RTFS execution against its yardsticks, measured in the same run.

    python bench/bench_execute.py [--rounds N] [--calls N]

Starts a private single-node Ray (127.0.0.1, 2 CPUs, no dashboard, token auth with a token
made for this run), the fleet's step policy and Ray Serve on 127.0.0.1, then prints one table:

- HTTP `POST /execute` of a small step / a bare Serve deployment on the same proxy that
  answers at once (goal <= 1.5x), and a bare deployment that reads the body first (Serve's
  replica fetches a body from its proxy in a round trip of its own: what any endpoint that
  reads its request pays);
- a step as a Ray task / the same step run by a `StepRunner` in this process, with a trivial
  Ray task as Ray's own floor;
- `(parallel ...)` branches as Ray tasks / as threads in this process / as the VM runs them
  today (sequentially when they never leave the VM), for 2 and 4 branches of three sizes:
  whether shipping branches to Ray tasks would pay.

Paired measurements alternate in rounds (A, B, A, B, ...), so drift on a shared, noisy machine
hits both sides; per-call numbers are p50/p99 over samples. Not a test: the table says whether
each goal was met in this run.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from rayenv import RAY_HOME  # first: Ray reads the environment it sets at import

# isort: split

import httpx
import ray  # after the environment Ray reads at import
from ray import serve
from timing import GoalTable, alternate, pct, timed

from cluster import http
from cluster.execute import StepRunner
from cluster.steps import StepRequest, StepSettings
from cluster.steptasks import RayStepExecutor, publish_policy
from delegation.config import default_config

TOKEN = secrets.token_hex(16)
STEP = {"source": "(reduce + (map inc (range 20)))", "deadline_ms": 10_000}
BRANCH_SIZES = (10, 20_000, 300_000)  # one branch: (reduce + (range n))


class Bare:
    """The yardstick deployment: answers at once, as the endpoint's shape (with `read_body`,
    it first reads the request body, which Serve fetches from its proxy in a round trip)."""

    def __init__(self, read_body: bool = False) -> None:
        http.bind_replica_grpc_to(ray.util.get_node_ip_address())
        self.read_body = read_body

    async def __call__(self, request: Any) -> Any:
        from starlette.responses import Response

        if self.read_body:
            await request.body()
        return Response('{"ok": true, "value": "210"}', media_type="application/json")


def ms(samples: list[float]) -> str:
    p50, p99 = pct(samples)
    return f"p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms"


# --- the measurements ---------------------------------------------------------------------

def http_vs_bare(url: str, rounds: int, calls: int, table: GoalTable) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    body = json.dumps(STEP)
    with httpx.Client(trust_env=False, timeout=60.0) as client:
        def call(path: str) -> Callable[[], float]:
            def once() -> float:
                start = time.perf_counter()
                response = client.post(url + path, content=body, headers=headers)
                elapsed = time.perf_counter() - start
                assert response.json() == {"ok": True, "value": "210"}, response.text
                return elapsed
            return once

        sides = [call("/execute"), call("/bare/execute"), call("/bare-body/execute")]
        for _ in range(20):  # warm every side (connections, replicas)
            for side in sides:
                side()
        ex, base, with_body = alternate(sides, rounds * calls)
    ratio = pct(ex)[0] / pct(base)[0]
    table.add("HTTP bare Serve deployment (answers at once)", ms(base), "yardstick")
    table.add(f"HTTP POST /execute {STEP['source']}", ms(ex), f"{ratio:.2f}x",
              f"<= 1.5x: {'met' if ratio <= 1.5 else 'NOT met'}")
    table.add("... a bare deployment that reads the body first", ms(with_body),
              f"{pct(with_body)[0] / pct(base)[0]:.2f}x", "where the time goes")


def task_vs_local(namespace: str, runner: StepRunner, rounds: int, calls: int,
                  table: GoalTable) -> None:
    tasks = RayStepExecutor(namespace)
    noop = ray.remote(lambda: None).options(num_cpus=0)
    request = StepRequest(STEP["source"])

    def remote() -> None:
        assert tasks.run(request).value == "210"

    def local() -> None:
        assert runner.run(request).value == "210"

    def floor() -> None:
        ray.get(noop.remote(), timeout=60)

    for _ in range(10):
        remote(), local(), floor()
    task, here, bare = alternate([lambda: timed(remote), lambda: timed(local),
                                  lambda: timed(floor)], rounds * calls)
    table.add("trivial Ray task (Ray's floor)", ms(bare), "yardstick")
    table.add("step in this process (StepRunner.run)", ms(here), "yardstick")
    table.add("step as a Ray task (RayStepExecutor.run)", ms(task),
              f"{pct(task)[0] / pct(here)[0]:.1f}x local, "
              f"{pct(task)[0] / pct(bare)[0]:.1f}x floor", "reported")


def parallel_branches(namespace: str, runner: StepRunner, rounds: int, table: GoalTable) -> None:
    """k branches of one size, each a step with a deadline as a remote step has: as Ray
    tasks, on threads here, and as one step's `(parallel ...)` (the VM runs branches that
    never leave it one after the other: threads cannot help CPU-bound Python)."""
    tasks = RayStepExecutor(namespace)
    pool = ThreadPoolExecutor(8)
    for n in BRANCH_SIZES:
        work = f"(reduce + (range {n}))"
        request = StepRequest(work)
        one = pct([timed(partial(runner.run, request)) for _ in range(5)])[0]
        for k in (2, 4):
            program = StepRequest("(parallel " + " ".join(f"[b{i} {work}]"
                                                          for i in range(k)) + ")")

            def as_tasks(k: int = k, request: StepRequest = request) -> None:
                replies = list(pool.map(lambda _: tasks.run(request), range(k)))
                assert all(r.ok for r in replies), replies

            def as_threads(k: int = k, request: StepRequest = request) -> None:
                replies = list(pool.map(lambda _: runner.run(request), range(k)))
                assert all(r.ok for r in replies), replies

            def in_vm(program: StepRequest = program) -> None:
                assert runner.run(program).ok

            for _ in range(2):
                as_tasks(), as_threads(), in_vm()
            ray_s, thread_s, vm_s = alternate(
                [lambda: timed(as_tasks), lambda: timed(as_threads), lambda: timed(in_vm)],
                rounds)
            ratio = pct(ray_s)[0] / min(pct(thread_s)[0], pct(vm_s)[0])
            what = f"{k} branches of {one * 1e3:.1f} ms"
            table.add(f"{what}: threads here / one step's parallel",
                      f"{pct(thread_s)[0] * 1e3:.1f} / {pct(vm_s)[0] * 1e3:.1f} ms (p50)",
                      "yardstick")
            table.add(f"{what}: as Ray tasks", f"{pct(ray_s)[0] * 1e3:.1f} ms (p50)",
                      f"{ratio:.2f}x", "pays" if ratio < 0.8 else "does not pay")
    pool.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=10, help="samples per round")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rtfs-bench-"))
    ray.init(num_cpus=2, include_dashboard=False, namespace="bench",
             object_store_memory=80 * 1024 * 1024, _node_ip_address="127.0.0.1",
             log_to_driver=False, configure_logging=False)
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    settings = StepSettings.of(default_config(tmp, state_dir=tmp / "state"))
    table = GoalTable()
    endpoint = None
    try:
        policy = publish_policy(settings, namespace)  # noqa: F841 - held: it lives as long
        runner = StepRunner.from_settings(settings, origin="bench", node="here")
        endpoint = http.start(settings, http.HttpOptions("127.0.0.1", 0,
                                                         http.token_sha256(TOKEN)))
        for name, read_body in (("bare", False), ("bare-body", True)):
            serve.run(serve.deployment(name=name, ray_actor_options={"num_cpus": 0},
                                       max_ongoing_requests=64)(Bare).bind(read_body),
                      name=name, route_prefix=f"/{name}")
        http_vs_bare(endpoint.url, args.rounds, args.calls, table)
        task_vs_local(namespace, runner, args.rounds, args.calls, table)
        parallel_branches(namespace, runner, max(5, args.rounds // 2), table)
    finally:
        if endpoint is not None:
            endpoint.stop()
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(RAY_HOME, ignore_errors=True)
    print("remote RTFS execution, one noisy 2-core machine "
          f"({args.rounds} rounds x {args.calls} calls, interleaved)\n")
    table.print()


if __name__ == "__main__":
    main()
