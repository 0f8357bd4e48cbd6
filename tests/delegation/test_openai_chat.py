"""openai-chat against a real chat-completions server on 127.0.0.1: requests, error
mapping, health without spending money, concurrency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from delegation.errors import (
    ProviderError,
    ProviderInputError,
    ProviderTimeout,
    ProviderUnavailable,
)
from delegation.providers import OpenAIChatProvider
from delegation.testing import ChatServer, FakeClock


def provider(server: ChatServer, **overrides: object) -> OpenAIChatProvider:
    options: dict = {
        "base_url": server.base_url,
        "model": "test-model",
        "api_key": "test-key",
        "api_key_env": "OPENAI_API_KEY",
        "timeout_s": 10.0,
    }
    options.update(overrides)
    return OpenAIChatProvider("openai", **options)


def test_request_carries_model_messages_params_and_key(chat_server: ChatServer) -> None:
    result = provider(chat_server).infer("hi", system="short", temperature=0.2, max_tokens=7)
    [request] = chat_server.completions()
    assert request.method == "POST" and request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer test-key"
    assert request.headers["content-type"] == "application/json"
    assert request.body == {
        "model": "test-model",
        "messages": [{"role": "system", "content": "short"}, {"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "max_tokens": 7,
    }
    assert result.text == request.reply


def test_no_key_means_unavailable_and_no_request(chat_server: ChatServer) -> None:
    nokey = provider(chat_server, api_key=None)
    health = nokey.health()
    assert not health.ok and health.reason == "OPENAI_API_KEY not set"
    with pytest.raises(ProviderUnavailable) as info:
        nokey.infer("secret plans")
    assert info.value.reason == "OPENAI_API_KEY not set"
    assert chat_server.requests() == []


def test_endpoint_without_key_sends_no_authorization() -> None:
    with ChatServer(api_key=None) as server:
        open_provider = provider(server, api_key=None, api_key_env=None)
        assert open_provider.health().ok
        assert open_provider.infer("x").text == server.completions()[0].reply
        assert "authorization" not in server.completions()[0].headers


@pytest.mark.parametrize("status", [400, 401, 404, 429, 500, 503])
def test_http_errors_become_provider_errors_with_status_and_body(
    chat_server: ChatServer, status: int
) -> None:
    chat_server.fail_with(status, '{"error": {"message": "nope"}}')
    with pytest.raises(ProviderError) as info:
        provider(chat_server).infer("x")
    assert info.value.status == status
    assert info.value.body == '{"error": {"message": "nope"}}'
    assert f"HTTP {status}" in str(info.value)


def test_wrong_key_and_unknown_model_are_reported(chat_server: ChatServer) -> None:
    with pytest.raises(ProviderError, match="Incorrect API key") as info:
        provider(chat_server, api_key="wrong").infer("x")
    assert info.value.status == 401
    with pytest.raises(ProviderError, match="model_not_found") as info:
        provider(chat_server, model="gpt-5").infer("x")
    assert info.value.status == 404


def test_long_error_bodies_are_cut(chat_server: ChatServer) -> None:
    chat_server.fail_with(500, "x" * 5000)
    with pytest.raises(ProviderError) as info:
        provider(chat_server).infer("x")
    assert info.value.body == "x" * 300 + "…"


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        '{"choices": []}',
        '{"choices": [{"message": {}}]}',
        '{"choices": [{"message": {"content": 5}}]}',
    ],
)
def test_malformed_answers_are_provider_errors(chat_server: ChatServer, body: str) -> None:
    chat_server.fail_with(200, body)
    with pytest.raises(ProviderError, match="chat completion") as info:
        provider(chat_server).infer("x")
    assert info.value.status == 200


def test_stopped_server_means_unavailable(chat_server: ChatServer) -> None:
    client = provider(chat_server, health_ttl_s=0)
    assert client.infer("before").text.endswith("before")
    chat_server.stop()
    with pytest.raises(ProviderUnavailable, match="connection refused") as info:
        client.infer("after")
    assert not isinstance(info.value, ProviderTimeout)
    health = client.health()
    assert not health.ok and "connection refused" in health.reason


def test_slow_server_times_out(chat_server: ChatServer) -> None:
    chat_server.set_delay(30)
    with pytest.raises(ProviderTimeout, match="within 0.3 s"):
        provider(chat_server, timeout_s=0.3).infer("x")


def test_bad_parameters_fail_before_any_request(chat_server: ChatServer) -> None:
    client = provider(chat_server)
    with pytest.raises(ProviderInputError, match="temperature"):
        client.infer("x", temperature="hot")
    with pytest.raises(ProviderInputError, match="system"):
        client.infer("x", system=["a"])
    with pytest.raises(ProviderInputError, match="top_p"):
        client.infer("x", top_p=1)
    assert chat_server.requests() == []


def test_health_is_a_free_get_cached_on_the_injected_clock(chat_server: ChatServer) -> None:
    clock = FakeClock(0.0)
    client = provider(chat_server, clock=clock, health_ttl_s=30)
    assert client.health().ok and client.health().ok
    assert [(r.method, r.path) for r in chat_server.requests()] == [("GET", "/v1/models")]
    clock.now = 29.9
    client.health()
    assert len(chat_server.requests()) == 1
    clock.now = 30.0
    chat_server.fail_with(401, "bad key")
    health = client.health()
    assert not health.ok and "HTTP 401" in health.reason
    assert [r.method for r in chat_server.requests()] == ["GET", "GET"]  # never a completion


def test_calls_run_concurrently(chat_server: ChatServer) -> None:
    chat_server.hold(4)  # no reply until four requests are open at once
    client = provider(chat_server)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(client.infer, ["a", "b", "c", "d"]))
    assert [r.text for r in results] == [ChatServer.reply_for("test-model", p) for p in "abcd"]
    assert chat_server.max_open == 4
