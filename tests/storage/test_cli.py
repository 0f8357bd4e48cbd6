"""`python -m storage`: round trips through every URI scheme, one-line errors, keys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from storage.cli import main
from storage.testservers import IPFSDaemon, MotoServer, free_port

IFACE, SOURCE = "ab" * 16, "cd" * 16


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "storage", *args],
        capture_output=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        input=stdin,
        timeout=120,
        check=False,
    )


def assert_one_line_error(done: subprocess.CompletedProcess[bytes], *needles: str) -> None:
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert done.stdout == b""
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ")
    for needle in needles:
        assert needle in err


def round_trip(uri: str, tmp_path: Path, env: dict[str, str] | None = None) -> str:
    payload = os.urandom(3000) + b"\x00\xff end"
    source = tmp_path / "payload.bin"
    source.write_bytes(payload)
    put = run("put", str(source), "--store", uri, env=env)
    assert put.returncode == 0, put.stderr.decode()
    blob_id = put.stdout.decode().strip().splitlines()[-1]
    got = run("get", blob_id, "--store", uri, env=env)
    assert got.returncode == 0, got.stderr.decode()
    assert got.stdout == payload
    listed = run("ls", "--store", uri, env=env)
    assert blob_id in listed.stdout.decode().split()
    return blob_id


def test_round_trip_file(tmp_path: Path) -> None:
    uri = (tmp_path / "store").as_uri()
    blob_id = round_trip(uri, tmp_path)
    assert (tmp_path / "store" / "blobs" / blob_id).is_file()  # a plain file named by its id


def test_round_trip_s3(moto_server: MotoServer, bucket: str, tmp_path: Path) -> None:
    env = {
        "AWS_ENDPOINT_URL": moto_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    blob_id = round_trip(f"s3://{bucket}/cli", tmp_path, env)
    assert moto_server.client().head_object(Bucket=bucket, Key=f"cli/blobs/{blob_id}")


def test_round_trip_ipfs(ipfs_daemon: IPFSDaemon, tmp_path: Path) -> None:
    round_trip("ipfs:///cli-test", tmp_path, {"IPFS_API": ipfs_daemon.api_addr})


def test_round_trip_tiered_s3(moto_server: MotoServer, bucket: str, tmp_path: Path) -> None:
    env = {
        "AWS_ENDPOINT_URL": moto_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    source = tmp_path / "p"
    source.write_bytes(b"tiered")
    uri, cache = f"s3://{bucket}", str(tmp_path / "cache")
    put = run("put", str(source), "--store", uri, "--cache-dir", cache, env=env)
    blob_id = put.stdout.decode().split()[-1]
    assert (tmp_path / "cache" / "blobs" / blob_id).read_bytes() == b"tiered"
    assert run("get", blob_id, "--store", uri, env=env).stdout == b"tiered"


def test_round_trip_memory_in_process(tmp_path: Path, capsysbinary) -> None:
    (tmp_path / "p").write_bytes(b"in memory")
    assert main(["put", str(tmp_path / "p"), "--store", "memory://cli"]) == 0
    blob_id = capsysbinary.readouterr().out.decode().split()[-1]
    assert main(["get", blob_id, "--store", "memory://cli"]) == 0
    assert capsysbinary.readouterr().out == b"in memory"


def test_put_from_stdin_and_get_to_file(tmp_path: Path) -> None:
    uri = (tmp_path / "s").as_uri()
    blob_id = run("put", "-", "--store", uri, stdin=b"piped").stdout.decode().split()[-1]
    assert run("get", blob_id, "--store", uri, "-o", str(tmp_path / "out")).returncode == 0
    assert (tmp_path / "out").read_bytes() == b"piped"


def test_missing_and_corrupted_blobs_are_one_line_errors(tmp_path: Path) -> None:
    uri = (tmp_path / "s").as_uri()
    assert_one_line_error(run("get", "0" * 32, "--store", uri), "not found")
    (tmp_path / "f").write_bytes(b"will rot")
    blob_id = run("put", str(tmp_path / "f"), "--store", uri).stdout.decode().split()[-1]
    (tmp_path / "s" / "blobs" / blob_id).write_bytes(b"rotten")
    assert_one_line_error(run("get", blob_id, "--store", uri), "corrupted")
    assert_one_line_error(run("get", "not-an-id", "--store", uri), "invalid blob id")
    assert_one_line_error(run("put", str(tmp_path / "nope"), "--store", uri), "cannot read")
    assert_one_line_error(run("get", "0" * 32, "--store", "gopher://x"), "unknown scheme")
    pin_with_source = ("lookup", "--source", SOURCE, "--pin", "0" * 32, "--store", uri)
    assert_one_line_error(run(*pin_with_source, cwd=tmp_path), "--pin applies to --interface")
    assert_one_line_error(
        run("lookup", "--interface", "xyz", "--store", uri, cwd=tmp_path),
        "interface_hash='xyz' is invalid",
    )


def test_unreachable_backends_are_one_line_errors(tmp_path: Path) -> None:
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    assert_one_line_error(run("get", "0" * 32, "--store", "s3://bkt", env=env), "is down")
    ipfs = f"ipfs://127.0.0.1:{free_port()}/x"
    assert_one_line_error(run("get", "0" * 32, "--store", ipfs), "is down")


def test_keys_publish_and_lookup(tmp_path: Path) -> None:
    uri, key = (tmp_path / "s").as_uri(), tmp_path / "fleet.pem"
    made = run("keys", "generate", "--out", str(key))
    assert made.returncode == 0 and oct(key.stat().st_mode & 0o777) == "0o600"
    public = made.stdout.decode().split("public key:")[1].split()[0]
    assert run("keys", "public", str(key)).stdout == made.stdout
    assert_one_line_error(run("keys", "generate", "--out", str(key)), "cannot write")
    (tmp_path / "code").write_bytes(b"bytecode")
    pub = run(
        "publish",
        str(tmp_path / "code"),
        "--interface",
        IFACE,
        "--source",
        SOURCE,
        "--store",
        uri,
        "--signing-key",
        str(key),
    )
    assert pub.returncode == 0, pub.stderr.decode()
    (tmp_path / "trusted").write_text(f"# fleet\n{public}\n")
    reader = ["--store", uri, "--state-dir", str(tmp_path / "state")]
    found = run(
        "lookup", "--interface", IFACE, *reader, "--trusted-keys", str(tmp_path / "trusted")
    )
    assert found.returncode == 0 and found.stdout == b"bytecode"
    by_source = run(
        "lookup", "--source", SOURCE, *reader, "--trusted-keys", str(tmp_path / "trusted")
    )
    assert by_source.stdout == b"bytecode"
    assert_one_line_error(run("lookup", "--interface", IFACE, *reader), "untrusted_key=1")
    (tmp_path / "revoked").write_text(public[:0] + made.stdout.decode().split()[2] + "\n")
    assert_one_line_error(
        run(
            "lookup",
            "--interface",
            IFACE,
            *reader,
            "--trusted-keys",
            str(tmp_path / "trusted"),
            "--revoked-keys",
            str(tmp_path / "revoked"),
        ),
        "revoked_key=1",
    )
    listing = run("ls", "--interface", IFACE, *reader).stdout.decode()
    assert listing.startswith("untrusted") and "blob=" in listing


def test_embedded_default_key_signs_and_verifies(tmp_path: Path) -> None:
    uri = (tmp_path / "s").as_uri()
    (tmp_path / "code").write_bytes(b"default")
    publish = run(
        "publish",
        str(tmp_path / "code"),
        "--interface",
        IFACE,
        "--source",
        SOURCE,
        "--store",
        uri,
        cwd=tmp_path,
    )
    assert publish.returncode == 0, publish.stderr.decode()
    assert list((tmp_path / ".rtfs-state" / "keys").iterdir())
    found = run("lookup", "--interface", IFACE, "--store", uri, cwd=tmp_path)
    assert found.stdout == b"default"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["put"],
        ["lookup", "--store", "memory://"],
        ["ls", "--store", "memory://", "--cache-dir", "/tmp/x", "--cache-max-bytes", "-1"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    assert run(*argv).returncode == 2
