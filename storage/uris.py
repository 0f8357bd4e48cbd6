"""Store URIs: parsing and validation, without opening anything or importing a backend.

    memory://[name]                       a store in this process (named: shared by name)
    file:///absolute/dir                  a local directory (`file://localhost/dir` too)
    s3://bucket[/prefix]                  an S3 bucket (or MinIO, moto, ...)
    ipfs://[host:port][/mfs-root][?index=URI]
                                          an IPFS node's RPC API; with `index=`, the L4 index
                                          records live in the record store URI names (e.g.
                                          `s3://bucket/prefix`), shared by every node, while
                                          blobs stay in IPFS (percent-encode `&`, `#` or `%`
                                          inside the nested URI)

Every parser raises `StoreURIError` naming what is wrong. `storage.validate_uri` (in the
registry, which knows every scheme) is what a config checker calls; `open_store` runs the same
checks before opening.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

from storage.errors import StoreURIError

DEFAULT_IPFS_ROOT = "/rtfs-l4"
_MEMORY_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]")
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_MFS_SEGMENT = re.compile(r"[A-Za-z0-9._~+=@,-]+")
_IPFS_QUERY_KEYS = frozenset({"index"})


class IPFSURI(NamedTuple):
    """The parts of an `ipfs://` URI."""

    api_addr: str | None  # RPC multiaddr, None when the URI names no host
    root: str  # MFS directory of the store's links
    index_uri: str | None  # URI of the shared record store, or None for the node's MFS


def _split(uri: object, scheme: str, form: str) -> tuple[str, str, str, str]:
    """(netloc, path, query, fragment) of a URI of `scheme`; `form` goes into errors."""
    if not isinstance(uri, str):
        raise StoreURIError(repr(uri), "a store URI must be a string")
    parts = urlsplit(uri)
    if parts.scheme != scheme:
        raise StoreURIError(uri, f"expected {form}")
    if parts.fragment or uri.endswith("#"):
        raise StoreURIError(uri, f"a fragment ('#...') has no meaning here: expected {form}")
    return parts.netloc, parts.path, parts.query, parts.fragment


def _no_query(uri: str, query: str, form: str) -> None:
    if query or uri.endswith("?"):
        keys = ", ".join(repr(k) for k, _ in parse_qsl(query, keep_blank_values=True))
        raise StoreURIError(uri, f"takes no query parameters (got {keys or '?'}): expected {form}")


def parse_memory_uri(uri: str) -> str:
    """The name of a `memory://[name]` URI ('' for an unnamed store)."""
    form = "memory:// or memory://name"
    netloc, path, query, _ = _split(uri, "memory", form)
    _no_query(uri, query, form)
    if path not in ("", "/"):
        raise StoreURIError(uri, f"a memory store has no path ({path!r}): expected {form}")
    if netloc and not _MEMORY_NAME.fullmatch(netloc):
        raise StoreURIError(uri, f"bad name {netloc!r}: use letters, digits, '.', '_', '-'")
    return netloc


def parse_file_uri(uri: str) -> Path:
    """The absolute path of a `file:///abs/dir` URI."""
    form = "file:///absolute/path"
    netloc, path, query, _ = _split(uri, "file", form)
    _no_query(uri, query, form)
    if netloc not in ("", "localhost"):
        raise StoreURIError(
            uri, f"{netloc!r} is read as a host; a local directory is {form} (three slashes)"
        )
    path = unquote(path)
    if not path:
        raise StoreURIError(uri, f"no directory given: expected {form}")
    if not path.startswith("/"):
        raise StoreURIError(uri, f"the path must be absolute: expected {form}")
    if "\0" in path:
        raise StoreURIError(uri, "the path contains a NUL byte")
    return Path(path)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split `s3://bucket/prefix` into the bucket and a prefix ending in '/' (or empty)."""
    form = "s3://bucket or s3://bucket/prefix"
    netloc, path, query, _ = _split(uri, "s3", form)
    _no_query(uri, query, form)
    if not netloc:
        raise StoreURIError(uri, f"no bucket given: expected {form}")
    if not _BUCKET.fullmatch(netloc) or ".." in netloc:
        raise StoreURIError(
            uri, f"bad bucket name {netloc!r}: 3-255 letters, digits, '.', '_', '-'"
        )
    prefix = path.strip("/")
    if "//" in prefix:
        raise StoreURIError(uri, f"empty segment in the prefix {prefix!r}")
    return netloc, f"{prefix}/" if prefix else ""


def parse_ipfs_uri(uri: str) -> IPFSURI:
    """Split `ipfs://[host:port][/mfs/root][?index=URI]` into its parts (checked)."""
    form = "ipfs://, ipfs://host:port or ipfs://host:port/mfs-root, optionally ?index=URI"
    netloc, path, query, _ = _split(uri, "ipfs", form)
    return IPFSURI(
        _ipfs_api_addr(uri, netloc, form), _mfs_root(uri, path), _ipfs_index(uri, query)
    )


def _ipfs_api_addr(uri: str, netloc: str, form: str) -> str | None:
    if not netloc:
        return None
    if "@" in netloc:
        raise StoreURIError(uri, f"credentials in the URI are not supported: expected {form}")
    parts = urlsplit(f"//{netloc}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError as e:
        raise StoreURIError(uri, f"bad port: {e}") from None
    if not host or port is None:
        raise StoreURIError(uri, "a host in an ipfs:// URI needs a port (ipfs://127.0.0.1:5001)")
    if port == 0:
        raise StoreURIError(uri, "bad port: 0 is not a port a daemon listens on")
    return f"/{_host_protocol(uri, host)}/{host}/tcp/{port}"


def _host_protocol(uri: str, host: str) -> str:
    """The multiaddr protocol of a host: ip4, ip6 or dns."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if host.replace(".", "").isdigit():
            raise StoreURIError(uri, f"bad IPv4 address {host!r}") from None
        if len(host) > 253 or not all(_DNS_LABEL.fullmatch(p) for p in host.split(".")):
            raise StoreURIError(uri, f"bad host name {host!r}") from None
        return "dns"
    return "ip6" if address.version == 6 else "ip4"


def _mfs_root(uri: str, path: str) -> str:
    segments = [unquote(s) for s in path.split("/") if s]
    for segment in segments:
        if segment in (".", "..") or not _MFS_SEGMENT.fullmatch(segment):
            raise StoreURIError(uri, f"bad MFS directory name {segment!r} in the path")
    return "/" + "/".join(segments) if segments else DEFAULT_IPFS_ROOT


def _ipfs_index(uri: str, query: str) -> str | None:
    if not query:
        if uri.endswith("?"):
            raise StoreURIError(uri, "empty query: expected ?index=URI or nothing")
        return None
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError as e:
        raise StoreURIError(uri, f"bad query: {e}") from None
    keys = [key for key, _ in pairs]
    for key in keys:
        if key not in _IPFS_QUERY_KEYS:
            raise StoreURIError(uri, f"unknown query parameter {key!r} (known: index)")
        if keys.count(key) > 1:
            raise StoreURIError(uri, f"query parameter {key!r} given more than once")
    index = dict(pairs)["index"]
    if not index:
        raise StoreURIError(uri, "index= needs a record store URI, e.g. index=s3://bucket/prefix")
    return index
