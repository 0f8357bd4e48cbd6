"""Remote RTFS execution over HTTP, for clients outside Ray: a Ray Serve deployment.

    delegation serve ... --http-port P [--http-host H] [--http-token-env VAR]

    POST /execute   {"source": "<RTFS>", "deadline_ms": N}
                    {"interface": hex, "blob": hex, "args": ["<RTFS>", ...], "deadline_ms": N}
      -> 200 {"ok": true, "value": "<printed RTFS value>"}
      -> 4xx/5xx {"ok": false, "error": {"type": ..., "message": ...}}
    GET /healthz    -> 200 {"ok": true}

- **Token.** Every `/execute` needs `Authorization: Bearer <token>`, the token being the
  value of the environment variable `--http-token-env` names (`RTFS_HTTP_TOKEN` by default) in
  the `delegation serve` process; missing or wrong -> 401. The endpoint refuses to start
  without one (at least `MIN_TOKEN_CHARS` characters). Only the token's SHA-256 reaches the
  replicas (deployment arguments live in Ray's control store), and it is compared in constant
  time. `/healthz` answers without a token (for probes), and 401 to a wrong one.
- **Bounds.** A body over 1 MiB -> 413 (read no further); malformed -> 400 naming the
  problem; a step past its deadline -> 504. The deadline counts from the request's arrival.
  Status codes of step errors: `cluster.execute` (403 refused, 404 unknown code, 422 a
  failing step, 503 L4 down).
- **Where.** `--http-host` is 127.0.0.1 unless told otherwise; Serve's one proxy runs on the
  head node. Steps run in the replica (a plain `__call__` deployment, no CPU held), on
  threads, each in its own VM, as steps for a remote caller (`cluster.execute.StepRunner`).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import socket
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from cluster.errors import ClusterError
from cluster.execute import StepRunner
from cluster.steps import (
    MAX_BODY_BYTES,
    BadStepRequest,
    StepReply,
    StepRequest,
    StepSettings,
    failed,
    parse_request,
)
from delegation.errors import UsageError

APP_NAME = "rtfs-execute"
DEFAULT_TOKEN_ENV = "RTFS_HTTP_TOKEN"
MIN_TOKEN_CHARS = 16
STEP_THREADS = 8
MAX_ONGOING_REQUESTS = 64
START_TIMEOUT_S = 120.0
STOP_GRACE_S = 5.0  # beyond a step's deadline, before the endpoint answers 504 regardless


@dataclass(frozen=True)
class HttpOptions:
    """Where the endpoint listens and the SHA-256 of its token (built at the edge)."""

    host: str
    port: int
    token_sha256: bytes


def configure(parser: argparse.ArgumentParser) -> None:
    """The HTTP options of `delegation serve`."""
    parser.add_argument("--http-port", type=int, metavar="P",
                        help="serve POST /execute on this port (0: a free one)")
    parser.add_argument("--http-host", default="127.0.0.1", metavar="H",
                        help="the address the HTTP endpoint binds (127.0.0.1)")
    parser.add_argument("--http-token-env", default=DEFAULT_TOKEN_ENV, metavar="VAR",
                        help=f"the variable holding its bearer token ({DEFAULT_TOKEN_ENV})")


def options_from(args: argparse.Namespace, environ: Mapping[str, str]) -> HttpOptions | None:
    """The endpoint's options, or None without `--http-port`.

    Raises:
        UsageError: a bad port, or no usable token in the variable `--http-token-env` names.
    """
    if args.http_port is None:
        return None
    if not 0 <= args.http_port < 65536:
        raise UsageError(f"--http-port {args.http_port} is not a port")
    token = environ.get(args.http_token_env, "")
    if len(token) < MIN_TOKEN_CHARS:
        state = "is not set" if not token else f"is shorter than {MIN_TOKEN_CHARS} characters"
        raise UsageError(f"--http-token-env: ${args.http_token_env} {state}: the HTTP endpoint "
                         "does not start without a token")
    return HttpOptions(args.http_host, args.http_port, token_sha256(token))


def token_sha256(token: str) -> bytes:
    """The SHA-256 of a bearer token: what the endpoint keeps and compares."""
    return hashlib.sha256(token.encode("utf-8")).digest()


# --- the deployment -------------------------------------------------------------------------

# The handler is async and runs every step on its own thread pool, so it never blocks an
# event loop: Serve may run it on the replica's main loop, which saves the hops between that
# loop and a user-code loop for every request and for the body (fetched from the proxy).
ACTOR_OPTIONS: dict[str, Any] = {
    "num_cpus": 0,
    "runtime_env": {"env_vars": {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}},
}


class ExecuteEndpoint:
    """The `/execute` and `/healthz` handler (made a Serve deployment by `start`).

    Args:
        settings: how steps run on this fleet.
        token_sha256: SHA-256 of the bearer token.
        max_body_bytes: the largest body read (413 beyond).
    """

    def __init__(self, settings: StepSettings, token_sha256: bytes,
                 max_body_bytes: int = MAX_BODY_BYTES) -> None:
        import ray

        node_ip = ray.util.get_node_ip_address()
        bind_replica_grpc_to(node_ip)
        self.token_sha256 = token_sha256
        self.max_body_bytes = max_body_bytes
        self.runner = StepRunner.from_settings(
            settings, origin="http", node=ray.get_runtime_context().get_node_id())
        self.pool = ThreadPoolExecutor(STEP_THREADS, thread_name_prefix="rtfs-step")

    async def __call__(self, request: Any) -> Any:
        path, method = request.url.path.rstrip("/") or "/", request.method
        if path == "/healthz":
            if method != "GET":
                return _error(405, "MethodNotAllowed", "use GET /healthz")
            if request.headers.get("authorization") and not self._authorized(request):
                return _unauthorized()
            return _json(200, {"ok": True})
        if path != "/execute":
            return _error(404, "NotFound", f"no {path}: POST /execute or GET /healthz")
        if method != "POST":
            return _error(405, "MethodNotAllowed", "use POST /execute")
        if not self._authorized(request):
            return _unauthorized()
        return await self._execute(request)

    def _authorized(self, request: Any) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        given = token_sha256(token.strip()) if scheme.lower() == "bearer" else b""
        return hmac.compare_digest(given, self.token_sha256)

    async def _execute(self, request: Any) -> Any:
        arrived = time.monotonic()
        body = await self._body(request)
        if body is None:
            return _error(413, "PayloadTooLarge",
                          f"the body is larger than {self.max_body_bytes} bytes")
        try:
            step = parse_request(body, self.runner.limits)
        except BadStepRequest as err:
            return _error(400, "BadRequest", str(err))
        deadline_s = step.deadline_s or self.runner.limits.default_deadline_s
        future = asyncio.get_running_loop().run_in_executor(
            self.pool, self._run, step, deadline_s, arrived)
        try:
            reply = await asyncio.wait_for(future, deadline_s + STOP_GRACE_S)
        except TimeoutError:
            reply = failed("DeadlineExceeded", "the step did not finish by its deadline", 504)
        return _json(reply.status, reply.to_json())

    def _run(self, step: StepRequest, deadline_s: float, arrived: float) -> StepReply:
        """Run `step` with what is left of its deadline since the request arrived."""
        left_s = deadline_s - (time.monotonic() - arrived)
        if left_s <= 0:
            return failed("DeadlineExceeded", "the deadline passed before the step started", 504)
        return self.runner.run(StepRequest(step.source, step.interface, step.blob, step.args,
                                           left_s))

    async def _body(self, request: Any) -> bytes | None:
        """The body, or None when it is larger than allowed (not read any further)."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)


def _json(status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
          ) -> Any:
    from starlette.responses import Response

    return Response(json.dumps(body), status_code=status, headers=dict(headers or {}),
                    media_type="application/json")


def _error(status: int, kind: str, message: str) -> Any:
    return _json(status, {"ok": False, "error": {"type": kind, "message": message}})


def _unauthorized() -> Any:
    return _json(401, {"ok": False, "error": {"type": "Unauthorized", "message":
                 "a valid 'Authorization: Bearer <token>' header is required"}},
                 {"WWW-Authenticate": "Bearer"})


def bind_replica_grpc_to(node_ip: str) -> None:
    """Make this Serve replica's internal gRPC server listen on `node_ip` when that is a
    loopback address. Ray Serve 2.60 binds it to every interface (`[::]:0`, hard-coded in
    `ray.serve._private.replica`), which breaks a loopback-only node; the address its peers
    use to reach it is the node address anyway. Runs in the replica's constructor, which Serve
    calls before it starts that server; a Ray without the hook is left as it is."""
    from cluster.raynode import is_loopback

    if not is_loopback(node_ip):
        return
    try:
        from ray.serve._private import replica
    except ImportError:
        return
    original = getattr(replica, "add_port_to_grpc_server", None)
    if original is None or getattr(original, "rtfs_loopback", False):
        return

    def bind_loopback(server: Any, address: str) -> Any:
        if address.startswith("[::]:"):
            address = f"{node_ip}:{address.removeprefix('[::]:')}"
        return original(server, address)

    bind_loopback.rtfs_loopback = True  # type: ignore[attr-defined]
    replica.add_port_to_grpc_server = bind_loopback


# --- starting and stopping ------------------------------------------------------------------

class HttpEndpoint:
    """A running endpoint: its URL, and `stop()`."""

    def __init__(self, url: str) -> None:
        self.url = url

    def stop(self) -> None:
        """Remove the application and stop Serve (its proxy and controller).

        Raises:
            ClusterError: Serve refused (after trying both).
        """
        from ray import serve

        problems = []
        for step in (lambda: serve.delete(APP_NAME), serve.shutdown):
            try:
                step()
            except Exception as err:  # noqa: BLE001 - Serve raises many kinds; reported below
                problems.append(f"{type(err).__name__}: {err}")
        if problems:
            raise ClusterError(f"stopping the HTTP endpoint: {'; '.join(problems)}")


def free_port(host: str) -> int:
    """A port nothing listens on at `host` now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _check_free(host: str, port: int) -> None:
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as err:
        raise UsageError(f"--http-port {port} on {host}: {err.strerror or err}") from None


def start(settings: StepSettings, options: HttpOptions, *,
          timeout_s: float = START_TIMEOUT_S) -> HttpEndpoint:
    """Start Serve's proxy on `options.host:port` and the endpoint in the connected Ray.

    Raises:
        UsageError: the port is taken.
        ClusterError: the endpoint did not start (e.g. this node cannot use the fleet's
            configuration), or Serve did not answer on the port within `timeout_s` (e.g. Serve
            already runs in this cluster with other HTTP options).
    """
    from ray import serve

    port = options.port or free_port(options.host)
    _check_free(options.host, port)
    serve.start(http_options={"host": options.host, "port": port}, proxy_location="HeadOnly")
    deployment = serve.deployment(name="execute", ray_actor_options=ACTOR_OPTIONS,
                                  max_ongoing_requests=MAX_ONGOING_REQUESTS)(ExecuteEndpoint)
    endpoint = HttpEndpoint(f"http://{_url_host(options.host)}:{port}")
    try:
        try:
            serve.run(deployment.bind(settings, options.token_sha256), name=APP_NAME,
                      route_prefix="/")
        except Exception as err:  # Serve raises its own kinds: converted at this edge
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ClusterError(f"the HTTP endpoint did not start: {first}") from err
        wait_healthy(endpoint.url, timeout_s)
    except BaseException:
        _stop_quietly(endpoint)
        raise
    return endpoint


def _stop_quietly(endpoint: HttpEndpoint) -> None:
    """Stop what started; the error that stopped the start is the one to report."""
    try:
        endpoint.stop()
    except ClusterError:
        pass


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def wait_healthy(url: str, timeout_s: float) -> None:
    """Wait until `GET {url}/healthz` answers 200.

    Raises:
        ClusterError: it did not within `timeout_s`.
    """
    import httpx

    deadline = time.monotonic() + timeout_s
    last = "no answer"
    with httpx.Client(trust_env=False, timeout=5.0) as client:
        while time.monotonic() < deadline:
            try:
                if client.get(url + "/healthz").status_code == 200:
                    return
            except httpx.HTTPError as err:
                last = f"{type(err).__name__}: {err}"
            time.sleep(0.2)
    raise ClusterError(f"the HTTP endpoint at {url} did not answer within {timeout_s:g} s "
                       f"({last}; does Serve already run in this cluster with other HTTP "
                       "options?)")
