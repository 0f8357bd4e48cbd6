"""Opening stores by URI: a small registry of schemes with lazy imports and install hints.

This module is the edge where the environment is read (`IPFS_API`); boto3 reads its own
(`AWS_ENDPOINT_URL`, credentials). Backends themselves take everything as arguments.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from storage.errors import BackendNotInstalled, StoreURIError


@dataclass(frozen=True)
class Backend:
    """How to open one URI scheme: `factory` is 'module:function', imported on first use."""

    factory: str
    requires: tuple[str, ...] = ()
    hint: str = ""


_BACKENDS: dict[str, Backend] = {}


def register_backend(scheme: str, backend: Backend) -> None:
    """Make `scheme://...` URIs open with `backend` (replacing any earlier registration).

    The factory is called as `factory(uri, env=..., **options)` and returns a store.
    """
    _BACKENDS[scheme] = backend


def schemes() -> list[str]:
    """The registered URI schemes."""
    return sorted(_BACKENDS)


def _load(scheme: str, backend: Backend) -> Callable[..., Any]:
    for module in backend.requires:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise BackendNotInstalled(scheme, module, backend.hint) from e
    module_name, _, attr = backend.factory.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def open_store(
    uri: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    cache_max_bytes: int = 256 << 20,
    env: Mapping[str, str] | None = None,
    **options: Any,
) -> Any:
    """Open the store a URI names.

    Args:
        uri: `memory://[name]`, `file:///abs/dir`, `s3://bucket[/prefix]`, or
            `ipfs://[host:port][/mfs-root]` (the RPC address defaults to `api_addr`, then
            `$IPFS_API`, then `/ip4/127.0.0.1/tcp/5001`).
        cache_dir: if given, wrap the store in a `TieredStore` with this local directory.
        cache_max_bytes: the tiered store's local bound.
        env: environment to read (`IPFS_API`); default `os.environ`.
        **options: passed to the backend: `fsync` (file), `client` (s3: a boto3 client),
            `endpoint_url` and `region_name` (s3), `api_addr`, `timeout_s`, `client_factory`
            (ipfs).

    Returns:
        A `BlobStore` that is also a `RecordStore`.

    Raises:
        StoreURIError: unknown scheme or malformed URI.
        BackendNotInstalled: the scheme's optional dependency is missing (says what to install).
    """
    if not isinstance(uri, str):
        raise StoreURIError(repr(uri), "a store URI must be a string")
    scheme = urlsplit(uri).scheme
    backend = _BACKENDS.get(scheme)
    if backend is None:
        known = ", ".join(f"{s}://" for s in schemes())
        raise StoreURIError(uri, f"unknown scheme {scheme!r} (known: {known})")
    store = _load(scheme, backend)(uri, env=os.environ if env is None else env, **options)
    if cache_dir is None:
        return store
    from storage.tiered import TieredStore

    return TieredStore(store, cache_dir, max_bytes=cache_max_bytes)


def _open_memory(uri: str, *, env: Mapping[str, str]) -> Any:
    from storage.memory import open_memory

    parts = urlsplit(uri)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise StoreURIError(uri, "expected memory:// or memory://name")
    return open_memory(parts.netloc)


def _open_file(uri: str, *, env: Mapping[str, str], fsync: bool = True) -> Any:
    from storage.local import LocalStore, path_from_file_uri

    return LocalStore(path_from_file_uri(uri), fsync=fsync)


def _open_s3(uri: str, *, env: Mapping[str, str], client: Any = None, **client_args: Any) -> Any:
    from storage.s3 import S3Store, parse_s3_uri

    bucket, prefix = parse_s3_uri(uri)
    return S3Store(bucket, prefix, client=client, **client_args)


def _open_ipfs(
    uri: str, *, env: Mapping[str, str], api_addr: str | None = None, **options: Any
) -> Any:
    from storage.ipfs import DEFAULT_API_ADDR, IPFSStore, parse_ipfs_uri

    addr, root = parse_ipfs_uri(uri)
    addr = addr or api_addr or env.get("IPFS_API") or DEFAULT_API_ADDR
    return IPFSStore(addr, unquote(root), **options)


register_backend("memory", Backend("storage.registry:_open_memory"))
register_backend("file", Backend("storage.registry:_open_file"))
register_backend(
    "s3",
    Backend("storage.registry:_open_s3", ("boto3",), "pip install 'rtfs-delegation[s3]'"),
)
register_backend(
    "ipfs",
    Backend(
        "storage.registry:_open_ipfs",
        ("ipfshttpclient",),
        "pip install 'rtfs-delegation[ipfs]'",
    ),
)
