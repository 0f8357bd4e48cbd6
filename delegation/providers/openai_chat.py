"""`openai-chat`: any OpenAI-compatible chat-completions endpoint, over HTTP with httpx.

One `httpx.Client` per provider keeps its connections alive across calls (thread-safe, a
bounded pool). `infer` POSTs `{base_url}/chat/completions`; `health` GETs
`{base_url}/models` (free) and caches the answer for `health_ttl_s` on an injected clock.
Errors are mapped at this edge: no key -> `ProviderUnavailable("<ENV> not set")` without
any request; refused connection or DNS failure -> `ProviderUnavailable`; timeout ->
`ProviderTimeout`; HTTP 4xx/5xx -> `ProviderError` with the status and an excerpt of the
body.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from delegation.errors import (
    ProviderError,
    ProviderInputError,
    ProviderTimeout,
    ProviderUnavailable,
)
from delegation.providers.base import BaseProvider, Health, ModelResult, effective_timeout

BODY_EXCERPT_CHARS = 300
_PARAMS = ("system", "temperature", "max_tokens")


class OpenAIChatProvider(BaseProvider):
    """Remote chat model. `infer(prompt, system=None, temperature=None, max_tokens=None)`.

    Args:
        id: the provider id.
        base_url: e.g. `https://api.openai.com/v1` (no trailing slash).
        model: the model name sent in each request.
        api_key: the key itself, resolved at the edge; None means "not available".
        api_key_env: the variable the key comes from (for the "not set" reason); None means
            the endpoint needs no key.
        timeout_s: per-request timeout; health_ttl_s: how long a health answer is reused.
        proxy: the proxy URL for this endpoint, decided at the edge (`NO_PROXY` applied);
            None connects directly.
        max_connections: the connection pool's bound.
        clock: monotonic clock for the health cache; timer: for latency.
    """

    accepted_params = _PARAMS

    def __init__(
        self,
        id: str,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        api_key_env: str | None = None,
        timeout_s: float = 10.0,
        health_ttl_s: float = 30.0,
        cost_per_call: float = 0.0,
        capabilities: tuple[str, ...] = (),
        proxy: str | None = None,
        max_connections: int = 32,
        clock: Callable[[], float] = time.monotonic,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(id, cost_per_call=cost_per_call, capabilities=capabilities, timer=timer)
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.health_ttl_s = health_ttl_s
        self._api_key = api_key
        self._api_key_env = api_key_env
        self._clock = clock
        self._client = httpx.Client(
            proxy=proxy, trust_env=False, timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections))
        self._health: tuple[float, Health] | None = None
        self._health_lock = threading.Lock()

    # --- infer ----------------------------------------------------------------------------

    def infer(self, prompt: str, **params: Any) -> ModelResult:
        """Send one chat completion; the answer's text is the first choice's message."""
        text = self._check(prompt, params)
        self._require_key()
        body = self._request_body(text, params)
        started = self._timer()
        status, payload = self._send("POST", "/chat/completions", body)
        content = self._content(status, payload)
        return self._result(content, content, started)

    def _request_body(self, prompt: str, params: Mapping[str, Any]) -> dict[str, Any]:
        messages = []
        system = params.get("system")
        if system is not None:
            if not isinstance(system, str):
                raise ProviderInputError(self.id, "system must be a string")
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": prompt})
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        for name in ("temperature", "max_tokens"):
            value = params.get(name)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ProviderInputError(self.id, f"{name} must be a number")
                body[name] = value
        return body

    def _content(self, status: int, payload: bytes) -> str:
        try:
            content = json.loads(payload)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ProviderError(
                self.id, "malformed chat completion", status, _excerpt(payload)
            ) from None
        if not isinstance(content, str):
            raise ProviderError(
                self.id, "chat completion content is not text", status, _excerpt(payload)
            )
        return content

    def _require_key(self) -> None:
        if self._api_key_env is not None and not self._api_key:
            raise ProviderUnavailable(self.id, f"{self._api_key_env} not set")

    # --- health ---------------------------------------------------------------------------

    def health(self) -> Health:
        """Unhealthy without a key; otherwise GET /models, cached for `health_ttl_s`."""
        if self._api_key_env is not None and not self._api_key:
            return Health(False, f"{self._api_key_env} not set")
        now = self._clock()
        with self._health_lock:
            cached = self._health
        if cached is not None and now - cached[0] < self.health_ttl_s:
            return cached[1]
        health = self._check_models()
        with self._health_lock:
            self._health = (now, health)
        return health

    def _check_models(self) -> Health:
        try:
            self._send("GET", "/models", None)
        except (ProviderUnavailable, ProviderError) as e:
            return Health(False, str(e))
        return Health(True, f"GET {self.base_url}/models answered")

    # --- HTTP -----------------------------------------------------------------------------

    def _send(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, bytes]:
        """Do one request; return (status, body) for 2xx, else raise the mapped error."""
        content = None if body is None else json.dumps(body).encode("utf-8")
        try:
            response = self._client.request(method, self.base_url + path, content=content,
                                            headers=self._headers(body is not None),
                                            timeout=effective_timeout(self.timeout_s))
        except httpx.TimeoutException as e:
            raise ProviderTimeout(
                self.id, f"no answer from {self.base_url} within {self.timeout_s:g} s"
            ) from e
        except httpx.ConnectError as e:
            raise self._unreachable(e) from e
        except (httpx.RemoteProtocolError, httpx.DecodingError) as e:
            raise ProviderError(self.id, f"{method} {path}: bad HTTP response: {e}") from e
        except httpx.TransportError as e:  # proxy errors, resets, network unreachable
            raise self._unreachable(e) from e
        if response.status_code >= 400:
            raise ProviderError(self.id, f"{method} {path} returned HTTP {response.status_code}",
                                response.status_code, _excerpt(response.content))
        return response.status_code, response.content

    def _unreachable(self, error: httpx.TransportError) -> ProviderUnavailable:
        cause = error.__cause__ or error.__context__
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, ConnectionRefusedError) or "refused" in str(error).lower():
            return ProviderUnavailable(self.id, f"connection refused by {self.base_url}")
        return ProviderUnavailable(self.id, f"cannot reach {self.base_url}: {error}")

    def close(self) -> None:
        """Close the kept-alive connections."""
        self._client.close()

    def _headers(self, has_body: bool) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "rtfs-delegation"}
        if has_body:
            headers["Content-Type"] = "application/json"
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers


def _excerpt(payload: bytes) -> str:
    text = payload.decode("utf-8", errors="replace").strip()
    if len(text) > BODY_EXCERPT_CHARS:
        return text[:BODY_EXCERPT_CHARS] + "…"
    return text
