"""`open_l4`: the L4 index facade with its keys configured, as the delegation engine uses it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from storage.index import L4Index
from storage.outage import DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_DOWN_FOR_S, DEFAULT_READ_TIMEOUT_S
from storage.registry import open_store
from storage.signing import KeyRing, PublicKeyLike, load_private_key, store_key
from storage.split import SplitStore

DEFAULT_STATE_DIR = ".rtfs-state"


def open_l4(
    store: str | Any,
    *,
    signing_key: Ed25519PrivateKey | str | os.PathLike[str] | None = None,
    trusted_keys: Iterable[PublicKeyLike] = (),
    revoked_keys: Iterable[PublicKeyLike] = (),
    state_dir: str | os.PathLike[str] | None = None,
    clock: Callable[[], float] = time.time,
    index_store: Any = None,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    down_for_s: float | None = DEFAULT_DOWN_FOR_S,
    timer: Callable[[], float] = time.monotonic,
    **store_options: Any,
) -> L4Index:
    """Open the L4 index of a store.

    Args:
        store: a store URI (opened with `open_store(store, **store_options)`) or a store.
            `ipfs://host:port/root?index=s3://bucket/prefix` keeps the index records in S3,
            shared by every node, and the blobs in this node's IPFS daemon.
        signing_key: the publisher's key, or the path of its PEM file. None means the
            per-store key of this machine: loaded from, or created once in,
            `<state_dir>/keys/` (a fresh in-memory key for `memory://` stores).
        trusted_keys: publishers' public keys (objects, 32 raw bytes or 64 hex) to trust,
            in addition to the signing key.
        revoked_keys: public keys or key ids (32 hex) to refuse, even the signing key.
        state_dir: where per-store keys live (default `./.rtfs-state`).
        clock: `created_at` source for published records.
        index_store: a `RecordStore` or its URI for the index records (the `?index=` of the
            URI, as an argument); the store then holds only the blobs.
        connect_timeout_s, read_timeout_s: per-request timeouts of network stores (used when
            `store` or `index_store` is a URI).
        down_for_s: how long a store found down fails at once (None: for the index's life);
            `index.outage` says whether it is down and why.
        timer: the monotonic clock of the outage latch.

    Raises:
        SigningKeyError: a key file or key cannot be read.
        StoreURIError, BackendNotInstalled: the store URI cannot be opened.
    """
    network: dict[str, Any] = {
        "connect_timeout_s": connect_timeout_s,
        "read_timeout_s": read_timeout_s,
        "down_for_s": down_for_s,
        "timer": timer,
    }
    if isinstance(store, str):
        store = open_store(store, index_store=index_store, **network, **store_options)
    elif index_store is not None:
        records = index_store
        if isinstance(records, str):
            records = open_store(records, **network)
        store = SplitStore(store, records)
    key = _signing_key(signing_key, store.uri, state_dir)
    keyring = KeyRing(trusted_keys, revoked_keys)
    return L4Index(store, signing_key=key, keyring=keyring, clock=clock)


def _signing_key(
    key: Ed25519PrivateKey | str | os.PathLike[str] | None,
    store_uri: str,
    state_dir: str | os.PathLike[str] | None,
) -> Ed25519PrivateKey:
    if isinstance(key, Ed25519PrivateKey):
        return key
    if key is not None:
        return load_private_key(key)
    if store_uri.startswith("memory:"):
        return Ed25519PrivateKey.generate()
    return store_key(Path(state_dir or DEFAULT_STATE_DIR), store_uri)
