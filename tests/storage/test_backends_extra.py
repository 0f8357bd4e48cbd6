"""Backend behaviour beyond the conformance suite: environment, daemons, several processes."""

from __future__ import annotations

import multiprocessing
import uuid
from pathlib import Path

import pytest

from storage import LocalStore, open_l4, open_store
from storage.testservers import IPFSDaemon, MotoServer

IFACE, SOURCE = "1" * 32, "2" * 32


def test_s3_store_honours_aws_endpoint_url(
    moto_server: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    store = open_store(f"s3://{bucket}")  # no client, no endpoint: boto3's default chain
    blob_id = store.put(b"via the environment")
    raw = moto_server.client().get_object(Bucket=bucket, Key=f"blobs/{blob_id}")
    assert raw["Body"].read() == b"via the environment"


def test_index_over_ipfs_round_trips(ipfs_uri: str, tmp_path: Path) -> None:
    index = open_l4(ipfs_uri, state_dir=tmp_path)
    record = index.publish(IFACE, SOURCE, b"bytecode on ipfs")
    assert record.pointer.startswith("ipfs://Qm")
    assert open_l4(ipfs_uri, state_dir=tmp_path).lookup_source(SOURCE).data == b"bytecode on ipfs"


def test_ipfs_daemon_that_cannot_start_reports_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "jsipfs"
    fake.write_text("#!/bin/sh\necho 'cannot open repo: disk on fire' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(Exception, match="disk on fire") as info:
        IPFSDaemon(tmp_path / "d", jsipfs=fake).start()
    assert "exited 3" in str(info.value)


def _write_same_blob(root: str, payload: bytes, rounds: int) -> None:
    store = LocalStore(root)
    for _ in range(rounds):
        store.put(payload)


def test_several_processes_writing_the_same_blob(tmp_path: Path) -> None:
    payload = uuid.uuid4().bytes * 50_000
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_write_same_blob, args=(str(tmp_path), payload, 20)) for _ in range(4)
    ]
    for proc in procs:
        proc.start()
    reader = LocalStore(tmp_path)
    while any(p.is_alive() for p in procs):
        for blob_id in reader.iterate():
            assert reader.get(blob_id) == payload  # never a partial file
    for proc in procs:
        proc.join()
        assert proc.exitcode == 0
    assert list(reader.iterate()) == [reader.put(payload)]
    assert [p.name for p in (tmp_path / "blobs").iterdir()] == list(reader.iterate())
