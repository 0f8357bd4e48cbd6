"""`validate_uri` checks store URIs without opening anything; `schemes()` is the registry's."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from storage import (
    Backend,
    SplitStore,
    StoreURIError,
    open_store,
    register_backend,
    schemes,
    validate_uri,
)
from storage import registry as registry_module
from storage.ipfs import IPFSStore
from storage.uris import parse_ipfs_uri

GOOD = [
    "memory://",
    "memory://shared-name_1.x",
    "file:///abs/dir",
    "file://localhost/abs/dir",
    "file:///dir%20with%20space",
    "s3://bucket",
    "s3://my.bucket-1/deep/prefix/",
    "ipfs://",
    "ipfs:///custom-root",
    "ipfs://127.0.0.1:5001",
    "ipfs://127.0.0.1:5001/fleet/l4",
    "ipfs://[::1]:5001/x",
    "ipfs://ipfs.internal:5001",
    "ipfs://127.0.0.1:5001/l4?index=s3://fleet-bucket/index",
    "ipfs://127.0.0.1:5001?index=file:///shared/l4-index",
    "ipfs://127.0.0.1:5001?index=s3%3A%2F%2Fbucket%2Fp",
]

BAD = [
    ("", "empty store URI"),
    ("   ", "empty store URI"),
    ("/plain/path", "no scheme"),
    ("gopher://x", "unknown scheme 'gopher'"),
    ("memory://x/y/z", "has no path"),
    ("memory://na me", "bad name"),
    ("memory://x?y=1", "takes no query parameters"),
    ("memory://x#frag", "fragment"),
    ("file://", "no directory given"),
    ("file:", "no directory given"),
    ("file://relative/path", "'relative' is read as a host"),
    ("file:relative", "must be absolute"),
    ("file:///x?y=1", "takes no query parameters"),
    ("file:///x%00y", "NUL"),
    ("s3://", "no bucket given"),
    ("s3:///prefix-only", "no bucket given"),
    ("s3://b", "bad bucket name"),
    ("s3://bucket:9000/p", "bad bucket name"),
    ("s3://user@bucket", "bad bucket name"),
    ("s3://bad..bucket", "bad bucket name"),
    ("s3://bucket/a//b", "empty segment"),
    ("s3://bucket/p?versioning=1", "takes no query parameters"),
    ("ipfs://host-without-port/x", "needs a port"),
    ("ipfs://127.0.0.1:99999", "bad port"),
    ("ipfs://127.0.0.1:0", "bad port"),
    ("ipfs://127.0.0.1:port", "bad port"),
    ("ipfs://999.1.1.1:5001", "bad IPv4 address"),
    ("ipfs://bad_host!:5001", "bad host name"),
    ("ipfs://user:pw@127.0.0.1:5001", "credentials"),
    ("ipfs://127.0.0.1:5001/../etc", "bad MFS directory name '..'"),
    ("ipfs://127.0.0.1:5001?", "empty query"),
    ("ipfs://127.0.0.1:5001?timeout=3", "unknown query parameter 'timeout'"),
    ("ipfs://127.0.0.1:5001?index=s3://a1b&index=s3://c1d", "given more than once"),
    ("ipfs://127.0.0.1:5001?index=", "index= needs a record store URI"),
    ("ipfs://127.0.0.1:5001?index=s3://", "bad index store 's3://': no bucket given"),
    ("ipfs://127.0.0.1:5001?index=gopher://x", "unknown scheme 'gopher'"),
    ("ipfs://h:1?index=ipfs://h:2%3Findex%3Ds3://bkt", "cannot itself have an index"),
]


@pytest.mark.parametrize("uri", GOOD)
def test_good_uris_pass(uri: str) -> None:
    validate_uri(uri)


@pytest.mark.parametrize(("uri", "message"), BAD, ids=[u or "empty" for u, _ in BAD])
def test_bad_uris_say_what_is_wrong(uri: str, message: str) -> None:
    with pytest.raises(StoreURIError, match=message.replace("?", r"\?")) as info:
        validate_uri(uri)
    assert info.value.uri == uri
    with pytest.raises(StoreURIError, match=message.replace("?", r"\?")):
        open_store(uri)  # opening runs the same checks


@pytest.mark.parametrize("value", [None, 5, b"s3://bucket"])
def test_non_strings_are_refused(value: Any) -> None:
    with pytest.raises(StoreURIError, match="must be a string"):
        validate_uri(value)


def test_validation_touches_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No socket is opened, no directory made, for any URI, good or bad."""

    def no_network(*args: object) -> None:
        raise AssertionError("validate_uri opened a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    target = tmp_path / "not-created"
    validate_uri(target.as_uri())
    validate_uri("ipfs://127.0.0.1:1/x?index=s3://bucket/p")
    validate_uri("s3://bucket/p")
    assert not target.exists()


def test_schemes_come_from_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "_BACKENDS", dict(registry_module._BACKENDS))
    assert schemes() == ["file", "ipfs", "memory", "s3"]
    with pytest.raises(StoreURIError, match="unknown scheme 'gs'"):
        validate_uri("gs://bucket")
    register_backend("gs", Backend("storage.memory:open_memory"))
    assert "gs" in schemes()
    validate_uri("gs://bucket/anything?at=all")  # no validator: the scheme is enough
    register_backend(
        "strict", Backend("storage.memory:open_memory", validator="storage.uris:parse_s3_uri")
    )
    with pytest.raises(StoreURIError):
        validate_uri("strict://b")  # the registered validator runs


def test_ipfs_uri_parts() -> None:
    parsed = parse_ipfs_uri("ipfs://[::1]:5002/a/b?index=s3%3A%2F%2Fbkt%2Fp")
    assert parsed.api_addr == "/ip6/::1/tcp/5002"
    assert parsed.root == "/a/b" and parsed.index_uri == "s3://bkt/p"
    assert parse_ipfs_uri("ipfs://node.internal:5001").api_addr == "/dns/node.internal/tcp/5001"
    assert parse_ipfs_uri("ipfs://").root == "/rtfs-l4"


def test_index_parameter_opens_a_split_store(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    store = open_store(f"ipfs://127.0.0.1:5999/l4?index={index_dir.as_uri()}")
    assert isinstance(store, SplitStore) and isinstance(store.blobs, IPFSStore)
    assert store.records.root == index_dir
    assert store.uri == f"ipfs://127.0.0.1:5999/l4?index={index_dir.as_uri()}"
    store.put_record("iface/" + "a" * 32, b"a shared record")  # no daemon needed for records
    assert len(list((index_dir / "records" / "iface" / ("a" * 32)).iterdir())) == 1


def test_an_index_given_twice_is_refused(tmp_path: Path) -> None:
    uri = f"ipfs://127.0.0.1:5999/l4?index={(tmp_path / 'a').as_uri()}"
    with pytest.raises(StoreURIError, match="index_store= names another"):
        open_store(uri, index_store=(tmp_path / "b").as_uri())
    plain = open_store("memory://", index_store=(tmp_path / "c").as_uri())
    assert isinstance(plain, SplitStore)  # a memory store has records too, but no index
