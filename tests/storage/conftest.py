"""Real servers for the storage tests: one moto S3 server and one IPFS daemon per session.

A server that fails to start fails the tests that need it, with its log; nothing is skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from storage.testservers import IPFSDaemon, MotoServer, ServerStartError


def pytest_configure(config: pytest.Config) -> None:
    # pytest resets warning filters per test; keep storage.ipfs's filter for ipfshttpclient's
    # deprecated urllib3 argument (not our code) so real warnings stay visible.
    config.addinivalue_line(
        "filterwarnings", "ignore:The 'strict' parameter is no longer needed:FutureWarning"
    )


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def bucket(moto_server: MotoServer) -> str:
    """A new, empty bucket on the session's moto server."""
    name = f"test-{uuid.uuid4().hex[:20]}"
    moto_server.client().create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def ipfs_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IPFSDaemon]:
    daemon = IPFSDaemon(tmp_path_factory.mktemp("ipfs"))
    try:
        daemon.start()
    except ServerStartError as e:
        pytest.fail(str(e), pytrace=False)
    yield daemon
    daemon.stop()


@pytest.fixture(scope="session")
def ipfs_raw(ipfs_daemon: IPFSDaemon) -> Iterator[Any]:
    """A plain ipfshttpclient client on the daemon: ground truth, independent of IPFSStore."""
    import ipfshttpclient

    client = ipfshttpclient.Client(ipfs_daemon.api_addr, session=True, timeout=30)
    yield client
    client.close()


@pytest.fixture
def ipfs_uri(ipfs_daemon: IPFSDaemon) -> str:
    """A store URI with its own MFS root, so every test starts empty."""
    port = ipfs_daemon.api_addr.rsplit("/", 1)[1]
    return f"ipfs://127.0.0.1:{port}/test-{uuid.uuid4().hex}"
