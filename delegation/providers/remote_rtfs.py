"""`remote-rtfs`: a plan step run by another node's HTTP endpoint (the seed's
`RemoteRTFSCapability`), over HTTP with httpx; no Ray here.

The endpoint is `delegation serve --http-port P` (`cluster.http`). `infer(prompt)` POSTs
`{endpoint}/execute` with `{"source": prompt, "deadline_ms": N}`; with the parameters
`interface` and `blob` (and `args`, RTFS values) it asks for a published function instead,
`{"interface": hex, "blob": hex, "args": [<RTFS text of each argument>]}`. The answer
`{"ok": true, "value": "<printed RTFS value>"}` becomes a `ModelResult` whose `text` is the
printed value and whose `value` is that value read back (the text itself when it does not
read back, e.g. a function).

The step's deadline is what the call's deadline leaves (`effective_timeout`), at most
`timeout_s`: the endpoint stops the step there; this side waits that long plus
`network_grace_s`. Errors are mapped at this edge: no token -> `ProviderUnavailable`
without a request; refused or unreachable -> `ProviderUnavailable`; no answer in time, or
the endpoint's 504 (the step hit its deadline) -> `ProviderTimeout`; 400 (a bad request or a
step that does not read) -> `ProviderInputError`; any other error answer -> `ProviderError`
naming the step's error type and message.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from delegation.convert import NIL
from delegation.errors import (
    ProviderError,
    ProviderInputError,
    ProviderTimeout,
    ProviderUnavailable,
)
from delegation.providers.base import BaseProvider, Health, ModelResult, effective_timeout
from rtfs.errors import RtfsError
from rtfs.forms import form_to_value
from rtfs.printer import to_readable
from rtfs.reader import read

STEP_PARAMS = ("interface", "blob", "args", "deadline_ms")
EXCERPT_CHARS = 300


class RemoteRTFSProvider(BaseProvider):
    """Runs RTFS steps on a remote endpoint.
    `infer(source)` or `infer("", interface=hex, blob=hex, args=[...])`.

    Args:
        id: the provider id.
        endpoint: the endpoint's base URL, e.g. `http://127.0.0.1:8000` (no trailing slash).
        token: the bearer token, resolved at the edge; None means "not available".
        token_env: the variable the token comes from (for the "not set" reason).
        timeout_s: the longest a step may run there (the call's deadline may cut it).
        network_grace_s: how much longer than the step's deadline this side waits.
        health_ttl_s: how long a health answer is reused.
        proxy: the proxy URL for the endpoint, decided at the edge; None connects directly.
        clock: monotonic clock for the health cache; timer: for latency.
    """

    accepted_params = STEP_PARAMS

    def __init__(self, id: str, *, endpoint: str, token: str | None = None,
                 token_env: str | None = None, timeout_s: float = 10.0,
                 network_grace_s: float = 2.0, health_ttl_s: float = 30.0,
                 cost_per_call: float = 0.0, capabilities: tuple[str, ...] = (),
                 proxy: str | None = None, max_connections: int = 32,
                 clock: Callable[[], float] = time.monotonic,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        super().__init__(id, cost_per_call=cost_per_call, capabilities=capabilities, timer=timer)
        self.endpoint = endpoint.rstrip("/")
        self.timeout_s = timeout_s
        self.network_grace_s = network_grace_s
        self.health_ttl_s = health_ttl_s
        self._token = token
        self._token_env = token_env
        self._clock = clock
        self._client = httpx.Client(
            proxy=proxy, trust_env=False, timeout=httpx.Timeout(timeout_s + network_grace_s),
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections))
        self._health: tuple[float, Health] | None = None
        self._health_lock = threading.Lock()

    # --- infer ----------------------------------------------------------------------------

    def infer(self, prompt: str, **params: Any) -> ModelResult:
        """Run the step `prompt` (RTFS source) there, or the published function the
        `interface` and `blob` parameters name, applied to `args`."""
        source = self._check(prompt, params)
        self._require_token()
        step_s = effective_timeout(self.timeout_s)
        body = self._body(source, params, step_s)
        started = self._timer()
        status, payload = self._send("POST", "/execute", body, step_s + self.network_grace_s)
        text = self._value_text(status, payload)
        return self._result(text, read_back(text), started)

    def _body(self, source: str, params: Mapping[str, Any], step_s: float) -> dict[str, Any]:
        return step_fields(self.id, source, params, step_s)

    def _value_text(self, status: int, payload: bytes) -> str:
        try:
            answer = json.loads(payload)
            ok, value = answer["ok"], answer.get("value")
        except (ValueError, KeyError, TypeError):
            raise ProviderError(self.id, "malformed answer", status, _excerpt(payload)) from None
        if ok is not True or not isinstance(value, str):
            raise ProviderError(self.id, "answer without a value", status, _excerpt(payload))
        return value

    def _require_token(self) -> None:
        if not self._token:
            raise ProviderUnavailable(self.id, f"{self._token_env or 'the token'} not set")

    # --- health ---------------------------------------------------------------------------

    def health(self) -> Health:
        """Unhealthy without a token; otherwise GET /healthz, cached for `health_ttl_s`."""
        if not self._token:
            return Health(False, f"{self._token_env or 'the token'} not set")
        now = self._clock()
        with self._health_lock:
            cached = self._health
        if cached is not None and now - cached[0] < self.health_ttl_s:
            return cached[1]
        try:
            self._send("GET", "/healthz", None, self.timeout_s)
            health = Health(True, f"GET {self.endpoint}/healthz answered")
        except (ProviderUnavailable, ProviderError) as err:
            health = Health(False, str(err))
        with self._health_lock:
            self._health = (now, health)
        return health

    # --- HTTP -----------------------------------------------------------------------------

    def _send(self, method: str, path: str, body: dict[str, Any] | None,
              wait_s: float) -> tuple[int, bytes]:
        """Do one request; return (status, body) for 2xx, else raise the mapped error."""
        content = None if body is None else json.dumps(body).encode("utf-8")
        try:
            response = self._client.request(method, self.endpoint + path, content=content,
                                            headers=self._headers(body is not None),
                                            timeout=wait_s)
        except httpx.TimeoutException as err:
            raise ProviderTimeout(self.id, f"no answer from {self.endpoint} within "
                                           f"{wait_s:g} s") from err
        except (httpx.RemoteProtocolError, httpx.DecodingError) as err:
            raise ProviderError(self.id, f"{method} {path}: bad HTTP response: {err}") from err
        except httpx.TransportError as err:  # refused, reset, unreachable, proxy errors
            raise ProviderUnavailable(self.id, f"cannot reach {self.endpoint}: {err}") from err
        if response.status_code >= 400:
            raise self._refused(method, path, response)
        return response.status_code, response.content

    def _refused(self, method: str, path: str, response: httpx.Response) -> Exception:
        status = response.status_code
        kind, message = _error_of(response.content)
        where = f"{method} {path} returned HTTP {status}"
        if status == 504:
            return ProviderTimeout(self.id, f"{where}: {kind}: {message}")
        if status == 400:
            return ProviderInputError(self.id, f"{where}: {kind}: {message}")
        return ProviderError(self.id, f"{where}: {kind}", status, message)

    def close(self) -> None:
        """Close the kept-alive connections."""
        self._client.close()

    def _headers(self, has_body: bool) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "rtfs-delegation",
                   "Authorization": f"Bearer {self._token}"}
        if has_body:
            headers["Content-Type"] = "application/json"
        return headers


def step_fields(provider_id: str, source: str, params: Mapping[str, Any], step_s: float
                ) -> dict[str, Any]:
    """The step a remote RTFS call asks for, as the endpoint's JSON fields: `source`, or
    `interface`, `blob` and `args` (RTFS text each), and `deadline_ms` (what the call has
    left, `step_s`, or less if the `deadline_ms` parameter asks for less).

    Raises:
        ProviderInputError: the parameters do not make one step.
    """
    deadline_ms = max(1, int(step_s * 1000))
    asked = params.get("deadline_ms")
    if asked is not None:
        if isinstance(asked, bool) or not isinstance(asked, int) or asked < 1:
            raise ProviderInputError(provider_id, "deadline_ms must be a positive integer")
        deadline_ms = min(deadline_ms, asked)
    if "interface" not in params and "blob" not in params:
        if "args" in params:
            raise ProviderInputError(provider_id, "args go with interface and blob")
        return {"source": source, "deadline_ms": deadline_ms}
    if source.strip():
        raise ProviderInputError(provider_id, "give either source or interface and blob")
    fields: dict[str, Any] = {"deadline_ms": deadline_ms}
    for key in ("interface", "blob"):
        value = params.get(key)
        if not isinstance(value, str):
            raise ProviderInputError(provider_id, f"{key} must be a hex string")
        fields[key] = value
    args = params.get("args", ())
    if not isinstance(args, tuple):  # an RTFS vector
        raise ProviderInputError(provider_id, "args must be a vector")
    fields["args"] = [to_readable(arg) for arg in args]
    return fields


def read_back(text: str) -> Any:
    """A step's printed value as an RTFS value (`NIL` for nil); the text itself when it is
    not readable data (e.g. a function)."""
    try:
        forms = read(text)
        if len(forms) == 1:
            value = form_to_value(forms[0])
            return NIL if value is None else value
    except (RtfsError, RecursionError):
        pass
    return text


def _error_of(payload: bytes) -> tuple[str, str]:
    """The error type and message of an error answer (or an excerpt of a foreign one)."""
    try:
        error = json.loads(payload)["error"]
        kind, message = error["type"], error["message"]
        if isinstance(kind, str) and isinstance(message, str):
            return kind, message
    except (ValueError, KeyError, TypeError):
        pass
    return "HTTPError", _excerpt(payload)


def _excerpt(payload: bytes) -> str:
    text = payload.decode("utf-8", errors="replace").strip()
    return text[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else "")
