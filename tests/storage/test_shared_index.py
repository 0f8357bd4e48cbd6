"""L4 shared by a fleet over IPFS: two js-ipfs daemons peered over 127.0.0.1, one S3 index.

Node A publishes through its own daemon; node B, a separate process that knows only its own
daemon and the shared record store (moto S3), finds the newest trusted version and fetches the
bytes by CID over bitswap. Ground truth comes from the bucket (a plain boto3 client) and from
each daemon's RPC API over plain HTTP.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest
import xxhash
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from storage import IndexRecord, MissReason, open_l4, public_key_hex
from storage.testservers import IPFSDaemon, MotoServer, ServerStartError

IFACE = xxhash.xxh3_128_hexdigest(b"interface: (defn shared [x])")


def source_of(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(b"source of " + data)


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[IPFSDaemon, IPFSDaemon]]:
    """Two online daemons, B connected to A, reaching nothing beyond 127.0.0.1."""
    root = tmp_path_factory.mktemp("fleet")
    a, b = IPFSDaemon(root / "a", online=True), IPFSDaemon(root / "b", online=True)
    try:
        a.start()
        b.start()
        b.connect(a)
    except ServerStartError as e:
        a.stop()
        b.stop()
        pytest.fail(str(e), pytrace=False)
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
def fleet_env(
    moto_server: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """How every node reaches the shared bucket: boto3's own environment variables."""
    aws = {
        "AWS_ENDPOINT_URL": moto_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    return {**os.environ, **aws}


def node_uri(daemon: IPFSDaemon, bucket: str) -> str:
    return f"ipfs://127.0.0.1:{daemon.api_port}/l4?index=s3://{bucket}/fleet"


def storage_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    """Node B: a separate process with nothing but the command line and the environment."""
    return subprocess.run(
        [sys.executable, "-m", "storage", *args], env=env, capture_output=True, timeout=120
    )


def test_daemons_peer_over_loopback_only(peers: tuple[IPFSDaemon, IPFSDaemon]) -> None:
    a, b = peers
    for daemon, other in ((a, b), (b, a)):
        assert daemon.rpc("bootstrap/list")["Peers"] == []
        connected = daemon.rpc("swarm/peers")["Peers"]
        assert [p["Peer"] for p in connected] == [other.peer_id]
        assert all(p["Addr"].startswith("/ip4/127.0.0.1/") for p in connected)


def test_node_b_finds_the_newest_trusted_version_node_a_published(
    peers: tuple[IPFSDaemon, IPFSDaemon],
    fleet_env: dict[str, str],
    moto_server: MotoServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    a, b = peers
    key_a = Ed25519PrivateKey.generate()
    clock = iter([1000.0, 2000.0, 3000.0])
    index_a = open_l4(node_uri(a, bucket), signing_key=key_a, clock=lambda: next(clock))
    old = index_a.publish(IFACE, source_of(b"v1"), b"bytecode v1 from node A")
    new = index_a.publish(IFACE, source_of(b"v2"), b"bytecode v2 from node A")
    # a node nobody trusts publishes an even newer version, through B's own daemon
    stranger = open_l4(node_uri(b, bucket), signing_key=Ed25519PrivateKey.generate(),
                       clock=lambda: next(clock))
    stranger.publish(IFACE, source_of(b"v3"), b"bytecode v3 from an untrusted node")

    # ground truth: the records are objects in the shared bucket, the blobs are on A's daemon
    listed = moto_server.client().list_objects_v2(
        Bucket=bucket, Prefix=f"fleet/records/iface/{IFACE}/"
    )
    assert len(listed["Contents"]) == 3
    cid = new.pointer.removeprefix("ipfs://")
    assert new.pointer.startswith("ipfs://Qm")
    assert a.rpc("files/stat", f"/l4/blobs/{new.blob_id}")["Hash"] == cid
    with pytest.raises(urllib.error.HTTPError):
        b.rpc("files/stat", f"/l4/blobs/{new.blob_id}")  # B has never seen it

    trusted = tmp_path / "trusted.keys"
    trusted.write_text(f"# node A\n{public_key_hex(key_a)}\n")
    uri_b = node_uri(b, bucket)
    keys = ("--trusted-keys", str(trusted), "--state-dir", str(tmp_path / "b-state"))
    out = tmp_path / "found.bin"
    done = storage_cli(fleet_env, "lookup", "--interface", IFACE, "--store", uri_b, *keys,
                       "-o", str(out))
    assert done.returncode == 0, done.stderr.decode()
    assert out.read_bytes() == b"bytecode v2 from node A"

    # B fetched the CID from A over bitswap and now keeps (links and pins) a copy itself
    assert b.rpc("files/stat", f"/l4/blobs/{new.blob_id}")["Hash"] == cid
    assert b.rpc("pin/ls", cid)["Keys"][cid]["Type"] == "recursive"

    pinned = storage_cli(fleet_env, "lookup", "--interface", IFACE, "--pin", old.blob_id,
                         "--store", uri_b, *keys)
    assert pinned.returncode == 0 and pinned.stdout == b"bytecode v1 from node A"
    listing = storage_cli(fleet_env, "ls", "--interface", IFACE, "--store", uri_b, *keys)
    statuses = [line.split()[0] for line in listing.stdout.decode().splitlines()]
    assert statuses == ["untrusted", "trusted", "trusted"]  # newest first


def test_a_record_redirected_to_other_bytes_is_refused(
    peers: tuple[IPFSDaemon, IPFSDaemon],
    fleet_env: dict[str, str],
    moto_server: MotoServer,
    bucket: str,
) -> None:
    """The pointer is not signed: whoever can write the bucket can point a genuine record at
    other bytes. B fetches them, finds they do not hash to the signed blob id, and refuses
    them (and keeps no copy)."""
    a, b = peers
    key_a = Ed25519PrivateKey.generate()
    index_a = open_l4(node_uri(a, bucket), signing_key=key_a)
    genuine = index_a.publish(IFACE, source_of(b"genuine"), b"genuine bytecode")
    evil_cid = _add_on(a, b"malicious bytecode")
    s3 = moto_server.client()
    group = f"fleet/records/iface/{IFACE}/"
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=group)["Contents"]:
        s3.delete_object(Bucket=bucket, Key=obj["Key"])
    forged = IndexRecord(**{**genuine.__dict__, "pointer": f"ipfs://{evil_cid}"}).encode()
    s3.put_object(Bucket=bucket, Key=group + xxhash.xxh3_128_hexdigest(forged), Body=forged)

    index_b = open_l4(node_uri(b, bucket), trusted_keys=[key_a.public_key()],
                      signing_key=Ed25519PrivateKey.generate())
    assert index_b.lookup_interface(IFACE) is None
    assert index_b.stats().misses == {MissReason.BLOB_CORRUPTED: 1}
    assert index_b.outage is None
    with pytest.raises(urllib.error.HTTPError):
        b.rpc("files/stat", f"/l4/blobs/{genuine.blob_id}")


def _add_on(daemon: IPFSDaemon, data: bytes) -> str:
    """Add bytes on a daemon with a plain client; return the CID."""
    import ipfshttpclient

    client = ipfshttpclient.Client(daemon.api_addr, timeout=30)
    try:
        return str(client.add_bytes(data))
    finally:
        client.close()
