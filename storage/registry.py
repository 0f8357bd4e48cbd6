"""Opening stores by URI: a small registry of schemes with lazy imports and install hints.

`schemes()` is the source of truth for accepted URI schemes (a backend that another package
registers is accepted everywhere, the configuration included), and `validate_uri` checks a
URI without opening anything. URI forms are documented in `storage.uris`.

This module is the edge where the environment is read (`IPFS_API`); boto3 reads its own
(`AWS_ENDPOINT_URL`, credentials). Backends themselves take everything as arguments.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from storage.errors import BackendNotInstalled, StoreURIError
from storage.outage import DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_DOWN_FOR_S, DEFAULT_READ_TIMEOUT_S
from storage.split import SplitStore
from storage.uris import parse_file_uri, parse_ipfs_uri, parse_memory_uri, parse_s3_uri


@dataclass(frozen=True)
class Backend:
    """How to open one URI scheme.

    Attributes:
        factory: 'module:function', imported on first use; called as
            `factory(uri, env=..., **options)` and returns a store.
        requires: modules the factory needs (missing -> `BackendNotInstalled` with `hint`).
        hint: what to install when a required module is missing.
        validator: 'module:function' that checks a URI of this scheme and raises
            `StoreURIError`; it must import without `requires`. Empty: any URI of the scheme.
        network: the factory takes `connect_timeout_s`, `read_timeout_s`, `down_for_s` and
            `timer` (the backend talks to a server that can be down).
    """

    factory: str
    requires: tuple[str, ...] = ()
    hint: str = ""
    validator: str = ""
    network: bool = False


_BACKENDS: dict[str, Backend] = {}


def register_backend(scheme: str, backend: Backend) -> None:
    """Make `scheme://...` URIs open with `backend` (replacing any earlier registration)."""
    _BACKENDS[scheme] = backend


def schemes() -> list[str]:
    """The registered URI schemes, sorted: what `validate_uri` and `open_store` accept."""
    return sorted(_BACKENDS)


def _import(target: str) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _backend_for(uri: object) -> tuple[str, Backend]:
    if not isinstance(uri, str):
        raise StoreURIError(repr(uri), "a store URI must be a string")
    if not uri.strip():
        raise StoreURIError(uri, "empty store URI")
    scheme = urlsplit(uri).scheme
    backend = _BACKENDS.get(scheme)
    if backend is None:
        known = ", ".join(f"{s}://" for s in schemes())
        what = f"unknown scheme {scheme!r}" if scheme else "no scheme"
        raise StoreURIError(uri, f"{what}: a store URI starts with one of {known}")
    return scheme, backend


def validate_uri(uri: object) -> None:
    """Check a store URI without opening anything (no network, no files, no backend import).

    The scheme must be registered (`schemes()`), and the rest what its backend accepts:
    `s3://` needs a bucket, `memory://` takes at most a name, `file://` an absolute path,
    `ipfs://` a valid host:port and only the `index=` query parameter, whose URI is checked
    in turn.

    Raises:
        StoreURIError: naming the URI and what is wrong with it.
    """
    _, backend = _backend_for(uri)
    if backend.validator:
        _import(backend.validator)(uri)


def _load(scheme: str, backend: Backend) -> Callable[..., Any]:
    for module in backend.requires:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise BackendNotInstalled(scheme, module, backend.hint) from e
    return _import(backend.factory)


def open_store(
    uri: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    cache_max_bytes: int = 256 << 20,
    index_store: Any = None,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    down_for_s: float | None = DEFAULT_DOWN_FOR_S,
    timer: Callable[[], float] = time.monotonic,
    env: Mapping[str, str] | None = None,
    **options: Any,
) -> Any:
    """Open the store a URI names (forms: `storage.uris`).

    Args:
        uri: `memory://[name]`, `file:///abs/dir`, `s3://bucket[/prefix]`, or
            `ipfs://[host:port][/mfs-root][?index=URI]` (the RPC address defaults to
            `api_addr`, then `$IPFS_API`, then `/ip4/127.0.0.1/tcp/5001`).
        cache_dir: if given, wrap the store in a `TieredStore` with this local directory.
        cache_max_bytes: the tiered store's local bound.
        index_store: a `RecordStore` (or its URI) to keep the index records in, shared by
            every node, instead of the store itself (`SplitStore`); the URI form is `?index=`.
        connect_timeout_s, read_timeout_s: per-request timeouts of network stores (S3, IPFS,
            and the index store); ignored by local ones.
        down_for_s: how long a network store fails at once once found down (None: for the
            store's life; 0: never latch); see `storage.outage`.
        timer: the monotonic clock of the outage latch.
        env: environment to read (`IPFS_API`); default `os.environ`.
        **options: passed to the backend: `fsync` (file), `client` (s3: a boto3 client),
            `endpoint_url`, `region_name`, `max_attempts` and credentials (s3), `api_addr`,
            `fetch_timeout_s`, `client_factory` (ipfs).

    Returns:
        A `BlobStore` that is also a `RecordStore`.

    Raises:
        StoreURIError: unknown scheme or malformed URI.
        BackendNotInstalled: the scheme's optional dependency is missing (says what to install).
    """
    network: dict[str, Any] = {
        "connect_timeout_s": connect_timeout_s,
        "read_timeout_s": read_timeout_s,
        "down_for_s": down_for_s,
        "timer": timer,
    }
    env = os.environ if env is None else env
    store = _open_one(uri, env, network, options)
    if index_store is not None and isinstance(store, SplitStore):
        raise StoreURIError(uri, "the URI names an index store and index_store= names another")
    if index_store is not None:
        store = SplitStore(store, _open_one(index_store, env, network, {}))
    if cache_dir is None:
        return store
    from storage.tiered import TieredStore

    return TieredStore(store, cache_dir, max_bytes=cache_max_bytes)


def _open_one(
    uri: Any, env: Mapping[str, str], network: dict[str, Any], options: dict[str, Any]
) -> Any:
    """Open one store (not tiered); a store object passes through as it is."""
    if not isinstance(uri, str):
        return uri
    validate_uri(uri)
    scheme, backend = _backend_for(uri)
    if backend.network:
        options = {**network, **options}
    return _load(scheme, backend)(uri, env=env, **options)


def _open_memory(uri: str, *, env: Mapping[str, str]) -> Any:
    from storage.memory import open_memory

    return open_memory(parse_memory_uri(uri))


def _open_file(uri: str, *, env: Mapping[str, str], fsync: bool = True) -> Any:
    from storage.local import LocalStore

    return LocalStore(parse_file_uri(uri), fsync=fsync)


def _open_s3(uri: str, *, env: Mapping[str, str], client: Any = None, **options: Any) -> Any:
    from storage.s3 import S3Store

    bucket, prefix = parse_s3_uri(uri)
    return S3Store(bucket, prefix, client=client, **options)


def _open_ipfs(
    uri: str,
    *,
    env: Mapping[str, str],
    api_addr: str | None = None,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    down_for_s: float | None = DEFAULT_DOWN_FOR_S,
    timer: Callable[[], float] = time.monotonic,
    **ipfs_options: Any,
) -> Any:
    from storage.ipfs import DEFAULT_API_ADDR, IPFSStore

    parsed = parse_ipfs_uri(uri)
    addr = parsed.api_addr or api_addr or env.get("IPFS_API") or DEFAULT_API_ADDR
    network: dict[str, Any] = {
        "connect_timeout_s": connect_timeout_s,
        "read_timeout_s": read_timeout_s,
        "down_for_s": down_for_s,
        "timer": timer,
    }
    store = IPFSStore(addr, parsed.root, **network, **ipfs_options)
    if parsed.index_uri is None:
        return store
    return SplitStore(store, _open_one(parsed.index_uri, env, network, {}))


def _validate_ipfs(uri: str) -> None:
    """An `ipfs://` URI, and the record store URI of its `index=` parameter."""
    index = parse_ipfs_uri(uri).index_uri
    if index is None:
        return
    try:
        validate_uri(index)
    except StoreURIError as e:
        raise StoreURIError(uri, f"bad index store {index!r}: {e.reason}") from None
    if urlsplit(index).scheme == "ipfs" and parse_ipfs_uri(index).index_uri is not None:
        raise StoreURIError(uri, "the index store cannot itself have an index= parameter")


register_backend(
    "memory", Backend("storage.registry:_open_memory", validator="storage.uris:parse_memory_uri")
)
register_backend(
    "file", Backend("storage.registry:_open_file", validator="storage.uris:parse_file_uri")
)
register_backend(
    "s3",
    Backend(
        "storage.registry:_open_s3",
        ("boto3",),
        "pip install 'rtfs-delegation[s3]'",
        validator="storage.uris:parse_s3_uri",
        network=True,
    ),
)
register_backend(
    "ipfs",
    Backend(
        "storage.registry:_open_ipfs",
        ("ipfshttpclient",),
        "pip install 'rtfs-delegation[ipfs]'",
        validator="storage.registry:_validate_ipfs",
        network=True,
    ),
)
