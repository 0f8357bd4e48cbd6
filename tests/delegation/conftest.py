"""Fixtures for the delegation tests: a real chat-completions server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from delegation.testing import ChatServer


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    """A started `ChatServer` accepting the key `test-key` for model `test-model`."""
    server = ChatServer(api_key="test-key", models=("test-model",)).start()
    try:
        yield server
    finally:
        server.stop()
