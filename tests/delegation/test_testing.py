"""The chat test server itself, driven with plain urllib (not with the provider it tests)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

from delegation.testing import ChatServer, FakeTimer


def call(
    server: ChatServer,
    path: str,
    body: object = None,
    key: str | None = "test-key",
    timeout_s: float = 10,
) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        server.base_url + path, data=data, method="GET" if body is None else "POST"
    )
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_until(predicate: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Poll until `predicate()` holds (a real server answers in its own time)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


CHAT = {"model": "test-model", "messages": [{"role": "user", "content": "ping"}]}


def test_chat_completion_shape_and_recording(chat_server: ChatServer) -> None:
    status, answer = call(chat_server, "/chat/completions", CHAT)
    assert status == 200 and answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == {
        "role": "assistant",
        "content": "echo(test-model): ping",
    }
    assert answer["usage"]["total_tokens"] == 1 + 2
    [record] = chat_server.requests()
    assert (record.method, record.path, record.status) == ("POST", "/v1/chat/completions", 200)
    assert record.body == CHAT and record.reply == "echo(test-model): ping"
    assert record.last_user_message == "ping"


def test_models_and_auth(chat_server: ChatServer) -> None:
    assert call(chat_server, "/models") == (
        200,
        {"object": "list", "data": [{"id": "test-model", "object": "model", "owned_by": "test"}]},
    )
    assert call(chat_server, "/models", key=None)[0] == 401
    assert call(chat_server, "/chat/completions", CHAT, key="other")[0] == 401
    assert call(chat_server, "/nowhere")[0] == 404
    assert [r.status for r in chat_server.requests()] == [200, 401, 401, 404]


@pytest.mark.parametrize(
    "body, status",
    [
        ({"model": "test-model"}, 400),
        ({"model": "test-model", "messages": [{"role": "system", "content": "x"}]}, 400),
        ({"model": "other", "messages": [{"role": "user", "content": "x"}]}, 404),
    ],
)
def test_invalid_requests(chat_server: ChatServer, body: dict, status: int) -> None:
    assert call(chat_server, "/chat/completions", body)[0] == status


def test_injected_failures_count_down(chat_server: ChatServer) -> None:
    chat_server.fail_with(503, times=2)
    assert [call(chat_server, "/chat/completions", CHAT)[0] for _ in range(3)] == [503, 503, 200]
    chat_server.fail_with(500)
    assert call(chat_server, "/models")[0] == 500
    chat_server.clear_failure()
    assert call(chat_server, "/models")[0] == 200


def test_hold_releases_when_n_requests_are_open(chat_server: ChatServer) -> None:
    chat_server.hold(3)
    results: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(call(chat_server, "/chat/completions", CHAT)[0])
        )
        for _ in range(3)
    ]
    for t in threads[:2]:
        t.start()
    wait_until(lambda: len(chat_server.completions()) == 2)
    assert results == []  # both arrived and are recorded, but held
    threads[2].start()
    for t in threads:
        t.join(timeout=30)
    assert results == [200, 200, 200] and chat_server.max_open == 3


def test_hold_gives_up_after_its_timeout() -> None:
    with ChatServer(hold_timeout_s=0.2) as server:
        server.hold(2)
        assert call(server, "/chat/completions", CHAT)[0] == 503


def test_stop_refuses_connections_and_cuts_held_requests(chat_server: ChatServer) -> None:
    chat_server.hold(5)
    held: list[int] = []
    thread = threading.Thread(
        target=lambda: held.append(call(chat_server, "/chat/completions", CHAT)[0])
    )
    thread.start()
    wait_until(lambda: len(chat_server.completions()) == 1)
    chat_server.stop()
    thread.join(timeout=30)
    assert held == [503]
    with pytest.raises(urllib.error.URLError) as info:
        call(chat_server, "/models")
    assert isinstance(info.value.reason, ConnectionRefusedError)


def test_fake_timer_advances_per_read() -> None:
    timer = FakeTimer(step=0.5, start=10)
    assert (timer(), timer()) == (10.5, 11.0)
