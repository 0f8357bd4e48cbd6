"""Fixtures for the delegation tests: a real chat-completions server on 127.0.0.1."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from delegation.testing import ChatServer
from storage import L4Index, open_l4
from storage.testservers import MotoServer


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    """A started `ChatServer` accepting the key `test-key` for model `test-model`."""
    server = ChatServer(api_key="test-key", models=("test-model",)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto's S3 server on 127.0.0.1, for an L4 store off this node."""
    server = MotoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_index(moto_server: MotoServer, tmp_path) -> L4Index:
    """An L4 index in a new bucket on the moto server."""
    bucket = f"l4-{uuid.uuid4().hex[:16]}"
    client = moto_server.client()
    client.create_bucket(Bucket=bucket)
    return open_l4(f"s3://{bucket}/fleet", client=client, state_dir=tmp_path / "keys")
