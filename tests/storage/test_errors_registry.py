"""Errors survive pickling and carry the right built-in bases; URIs open the right stores."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

import storage
from storage import (
    BackendNotInstalled,
    BlobNotFound,
    LocalStore,
    MemoryStore,
    TieredStore,
    open_store,
    registry,
)
from storage.errors import ALL_ERRORS
from storage.ipfs import IPFSStore
from storage.registry import Backend, register_backend
from storage.s3 import S3Store
from storage.testservers import ServerStartError

SAMPLES = {
    "StorageError": ("plain message",),
    "InvalidBlobId": ("nope",),
    "InvalidRecordGroup": ("iface",),
    "BlobNotFound": ("a" * 32, "file:///s"),
    "BlobCorrupted": ("a" * 32, "b" * 32, "s3://b/"),
    "StorageUnavailable": ("s3://b/", "connection refused"),
    "StoreDown": ("s3://b/", "get blobs/x: EndpointConnectionError: refused"),
    "StoreClosed": ("s3://b/",),
    "StoreURIError": ("gopher://x", "unknown scheme"),
    "BackendNotInstalled": ("s3", "boto3", "pip install x"),
    "CodecError": ("index record", "truncated"),
    "SigningKeyError": ("k.pem", "not a key"),
    "IndexArgumentError": ("interface_hash", "xyz", "32 hex digits"),
}


def test_every_error_has_a_sample() -> None:
    assert {cls.__name__ for cls in ALL_ERRORS} == set(SAMPLES)


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_errors_survive_pickle(cls: type[Exception]) -> None:
    error = cls(*SAMPLES[cls.__name__])
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is cls
    assert clone.args == error.args
    assert str(clone) == str(error)
    assert isinstance(clone, storage.StorageError)


def test_server_start_error_survives_pickle() -> None:
    error = ServerStartError("IPFS daemon", "exited 1", "log text")
    clone = pickle.loads(pickle.dumps(error))
    assert str(clone) == str(error) and "log text" in str(clone)


def test_built_in_bases() -> None:
    assert issubclass(storage.BlobNotFound, KeyError)
    assert issubclass(storage.BlobCorrupted, ValueError)
    assert issubclass(storage.StorageUnavailable, ConnectionError)
    assert issubclass(storage.StoreDown, storage.StorageUnavailable)
    assert issubclass(storage.StoreClosed, ValueError)
    assert issubclass(storage.BackendNotInstalled, ImportError)
    assert str(BlobNotFound("a" * 32)) == f"blob {'a' * 32} not found"  # no KeyError quotes


def test_uris_open_their_backends(tmp_path: Path) -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    shared = open_store("memory://shared")
    assert open_store("memory://shared").get(shared.put(b"one store")) == b"one store"
    assert open_store("memory://") is not open_store("memory://")
    local = open_store((tmp_path / "d").as_uri())
    assert isinstance(local, LocalStore) and local.root == tmp_path / "d"
    s3 = open_store("s3://bucket/deep/prefix/", region_name="us-east-1")
    assert isinstance(s3, S3Store) and (s3.bucket, s3.prefix) == ("bucket", "deep/prefix/")
    ipfs = open_store("ipfs://", env={"IPFS_API": "/ip4/127.0.0.1/tcp/5999"})
    assert isinstance(ipfs, IPFSStore) and ipfs.api_addr == "/ip4/127.0.0.1/tcp/5999"
    assert ipfs.root == "/rtfs-l4"
    explicit = open_store("ipfs://10.0.0.1:5002/fleet", env={"IPFS_API": "/ip4/1.1.1.1/tcp/1"})
    assert (explicit.api_addr, explicit.root) == ("/ip4/10.0.0.1/tcp/5002", "/fleet")
    tiered = open_store("memory://", cache_dir=tmp_path / "cache", cache_max_bytes=1000)
    assert isinstance(tiered, TieredStore) and tiered.max_bytes == 1000


def test_missing_optional_dependency_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(registry, "_BACKENDS", dict(registry._BACKENDS))
    register_backend(
        "fake",
        Backend(
            "storage.memory:open_memory",
            ("no_such_module_xyz",),
            "pip install 'rtfs-delegation[fake]'",
        ),
    )
    with pytest.raises(BackendNotInstalled, match=r"pip install 'rtfs-delegation\[fake\]'"):
        open_store("fake://x")
