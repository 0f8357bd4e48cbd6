"""`ChatServer`: a real OpenAI-compatible chat server on 127.0.0.1 for tests.

It speaks `POST /v1/chat/completions` and `GET /v1/models`, checks the bearer key, records
every request and the reply it sent, answers deterministically (`reply_for`), and can be told
to fail with a status, to be slow, or to hold replies until N requests are open at once (to
prove concurrency). After `stop()` its port refuses connections.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it, and what it answered.

    A request is recorded when it arrives (`status` 0, no `reply`) and completed when the
    answer is ready, so requests held open are already visible.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    status: int = 0
    reply: str | None = None
    connection: int = 0  # which TCP connection carried it (1, 2, ... in order of accept)

    @property
    def last_user_message(self) -> str | None:
        """Content of the last `user` message of a chat request, else None."""
        return _last_user_message(self.body)


def _last_user_message(body: Any) -> str | None:
    try:
        users = [m for m in body["messages"] if m.get("role") == "user"]
        content = users[-1]["content"] if users else None
    except (TypeError, KeyError, AttributeError):
        return None
    return content if isinstance(content, str) else None


@dataclass
class _Failure:
    status: int
    body: str
    remaining: int | None


@dataclass
class _State:
    lock: threading.Condition = field(default_factory=threading.Condition)
    records: list[RecordedRequest] = field(default_factory=list)
    open_now: int = 0
    max_open: int = 0
    hold_until: int = 0
    hold_released: bool = False
    delay_s: float = 0.0
    failure: _Failure | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    sockets: dict[int, Any] = field(default_factory=dict)  # open connections, by number
    busy: set[int] = field(default_factory=set)  # connections answering a request now
    connections: int = 0


class ChatServer:
    """An OpenAI-compatible chat-completions server on 127.0.0.1, for tests only.

    Args:
        api_key: the bearer key it accepts; None accepts any request without a key.
        models: model ids it serves (`GET /v1/models`); others get 404 model_not_found.
        hold_timeout_s: how long `hold` waits for N open requests before answering 503.
    """

    def __init__(
        self,
        *,
        api_key: str | None = "test-key",
        models: Iterable[str] = ("test-model",),
        hold_timeout_s: float = 30.0,
    ) -> None:
        self.api_key = api_key
        self.models = tuple(models)
        self.hold_timeout_s = hold_timeout_s
        self._state = _State()
        self._ids = itertools.count(1)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def reply_for(model: str, prompt: str) -> str:
        """The answer the server gives to a last user message `prompt` for `model`."""
        return f"echo({model}): {prompt}"

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve in a background thread."""
        handler = type("Handler", (_Handler,), {"server_ref": self})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            name="chat-server",
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port; held or delayed replies are cut short (503)."""
        state = self._state
        state.stopping.set()
        with state.lock:
            state.lock.notify_all()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        with state.lock:  # idle keep-alive connections end too (busy ones after answering)
            open_sockets = [sock for number, sock in state.sockets.items()
                            if number not in state.busy]
        for sock in open_sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The URL to configure as a provider's `base_url` (`http://127.0.0.1:PORT/v1`)."""
        return f"http://127.0.0.1:{self.port}/v1"

    # --- controls -------------------------------------------------------------------------

    def fail_with(self, status: int, body: str = "", *, times: int | None = None) -> None:
        """Answer the next `times` requests (all if None) with `status` and `body`."""
        with self._state.lock:
            self._state.failure = _Failure(status, body or _error_json(f"injected {status}"), times)

    def clear_failure(self) -> None:
        """Answer normally again."""
        with self._state.lock:
            self._state.failure = None

    def set_delay(self, delay_s: float) -> None:
        """Wait `delay_s` seconds before answering each request."""
        with self._state.lock:
            self._state.delay_s = delay_s

    def hold(self, n: int) -> None:
        """Hold chat replies until `n` chat requests are open at once, then release them all."""
        with self._state.lock:
            self._state.hold_until = n
            self._state.hold_released = False

    @property
    def connections(self) -> int:
        """How many TCP connections clients have opened so far."""
        with self._state.lock:
            return self._state.connections

    @property
    def max_open(self) -> int:
        """The most chat requests that were open at the same time."""
        with self._state.lock:
            return self._state.max_open

    def requests(self, path: str | None = None) -> list[RecordedRequest]:
        """Every request received so far (optionally only those for `path`), in order."""
        with self._state.lock:
            return [r for r in self._state.records if path is None or r.path == path]

    def completions(self) -> list[RecordedRequest]:
        """The chat-completion requests received so far."""
        return self.requests("/v1/chat/completions")

    # --- request handling (called from handler threads) -----------------------------------

    def _record(self, record: RecordedRequest) -> int:
        """Record a request on arrival; return its index for `_finish`."""
        with self._state.lock:
            self._state.records.append(record)
            return len(self._state.records) - 1

    def _finish(self, index: int, status: int, reply: str | None) -> None:
        with self._state.lock:
            record = self._state.records[index]
            self._state.records[index] = replace(record, status=status, reply=reply)

    def _enter_chat(self) -> bool:
        """Count an open chat request and wait out a hold; False if the hold timed out."""
        state = self._state
        with state.lock:
            state.open_now += 1
            state.max_open = max(state.max_open, state.open_now)
            if state.hold_until and state.open_now >= state.hold_until:
                state.hold_released = True
                state.lock.notify_all()
            if not state.hold_until:
                return True
            return (
                state.lock.wait_for(
                    lambda: state.hold_released or state.stopping.is_set(), self.hold_timeout_s
                )
                and not state.stopping.is_set()
            )

    def _leave_chat(self) -> None:
        with self._state.lock:
            self._state.open_now -= 1

    def _pre_reply(self) -> tuple[int, str] | None:
        """Apply delay and injected failure; return (status, body) to send instead, if any."""
        state = self._state
        with state.lock:
            delay = state.delay_s
        if delay and state.stopping.wait(delay):
            return 503, _error_json("server stopping")
        with state.lock:
            failure = state.failure
            if failure is None:
                return None
            if failure.remaining is not None:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    state.failure = None
            return failure.status, failure.body

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        return self.api_key is None or headers.get("authorization") == f"Bearer {self.api_key}"

    def _completion(self, body: Any) -> tuple[int, str, str | None]:
        """Validate a chat request body; return (status, JSON text, reply or None)."""
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return 400, _error_json("'messages' is required"), None
        model = body.get("model")
        if model not in self.models:
            return 404, _error_json(f"The model '{model}' does not exist", "model_not_found"), None
        prompt = _last_user_message(body)
        if prompt is None:
            return 400, _error_json("a user message with string content is required"), None
        reply = self.reply_for(model, prompt)
        return 200, json.dumps(self._completion_json(model, prompt, reply)), reply

    def _completion_json(self, model: str, prompt: str, reply: str) -> dict[str, Any]:
        prompt_tokens, reply_tokens = len(prompt.split()), len(reply.split())
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": reply},
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": reply_tokens,
                "total_tokens": prompt_tokens + reply_tokens,
            },
        }

    def _models_json(self) -> str:
        data = [{"id": m, "object": "model", "owned_by": "test"} for m in self.models]
        return json.dumps({"object": "list", "data": data})


def _error_json(message: str, code: str = "invalid_request_error") -> str:
    return json.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    )


class _Handler(BaseHTTPRequestHandler):
    server_ref: ClassVar[ChatServer]
    protocol_version = "HTTP/1.1"  # keep-alive, as real providers speak

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr log."""

    def setup(self) -> None:
        super().setup()
        state = self.server_ref._state
        with state.lock:
            state.connections += 1
            self.connection_number = state.connections
            state.sockets[self.connection_number] = self.connection

    def finish(self) -> None:
        with self.server_ref._state.lock:
            self.server_ref._state.sockets.pop(self.connection_number, None)
        super().finish()

    def parse_request(self) -> bool:
        state = self.server_ref._state  # a request line arrived: this connection is busy
        with state.lock:
            state.busy.add(self.connection_number)
        return super().parse_request()

    def handle_one_request(self) -> None:
        state = self.server_ref._state
        try:
            super().handle_one_request()
        finally:
            with state.lock:
                state.busy.discard(self.connection_number)
            if state.stopping.is_set():
                self.close_connection = True

    def do_GET(self) -> None:
        chat = self.server_ref
        headers = {k.lower(): v for k, v in self.headers.items()}
        if self.path != "/v1/models":
            status, text = 404, _error_json(f"no route {self.path}")
        elif (injected := chat._pre_reply()) is not None:
            status, text = injected
        elif not chat._authorized(headers):
            status, text = 401, _error_json("Incorrect API key provided", "invalid_api_key")
        else:
            status, text = 200, chat._models_json()
        record = RecordedRequest("GET", self.path, headers, None,
                                 connection=self.connection_number)
        chat._finish(chat._record(record), status, None)
        self._send(status, text)

    def do_POST(self) -> None:
        chat = self.server_ref
        headers = {k.lower(): v for k, v in self.headers.items()}
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        index = chat._record(RecordedRequest("POST", self.path, headers, body,
                                             connection=self.connection_number))
        status, text, reply = self._answer_post(chat, headers, body)
        chat._finish(index, status, reply)
        self._send(status, text)

    def _answer_post(
        self, chat: ChatServer, headers: Mapping[str, str], body: Any
    ) -> tuple[int, str, str | None]:
        if self.path != "/v1/chat/completions":
            return 404, _error_json(f"no route {self.path}"), None
        try:
            if not chat._enter_chat():
                return 503, _error_json("hold timed out or server stopping"), None
            injected = chat._pre_reply()
            if injected is not None:
                return injected[0], injected[1], None
            if not chat._authorized(headers):
                return 401, _error_json("Incorrect API key provided", "invalid_api_key"), None
            if body is None:
                return 400, _error_json("body is not JSON"), None
            return chat._completion(body)
        finally:
            chat._leave_chat()

    def _send(self, status: int, text: str) -> None:
        data = text.encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout); nothing to tell it
