"""L4 content-addressed storage for compiled RTFS code.

Blob stores (`open_store`): `memory://`, `file:///dir` (`LocalStore`, the embedded default),
`s3://bucket/prefix` (`S3Store`), `ipfs://` (`IPFSStore`), optionally behind a bounded local
cache (`TieredStore`). Every store implements `BlobStore` (content-addressed blobs: id =
xxh3_128 hex of the bytes, verified on every `get`) and `RecordStore` (small immutable records
in named groups, used by the index). `ipfs://host:port/root?index=s3://bucket/prefix` keeps
the index records in a store every node reaches (`SplitStore`), so nodes with their own IPFS
daemons share one L4. `validate_uri` checks a URI without opening it; `schemes()` lists the
registered schemes.

Network stores (S3, IPFS) take `connect_timeout_s` and `read_timeout_s`, and latch down after
a failure that means the backend is down: calls then raise `StoreDown` at once for
`down_for_s` seconds, and `store.outage` / `index.outage` say which store and why
(`storage.outage`).

The L4 index (`open_l4` -> `L4Index`) maps interface hashes to signed published versions and
source hashes to blobs; lookups return `VerifiedBlob`s whose SHA-256 and Ed25519 signature
were checked against trusted, non-revoked keys, or None (a miss, counted in `stats()`).

`atomic_write(path, data)` is the project's one atomic file write (temporary file + rename).

This package imports nothing else of the project: callers hand in hashes as hex strings.
The conformance suite for new backends is `storage.testing.BlobStoreTests`.
"""

from __future__ import annotations

from storage.errors import (
    BackendNotInstalled,
    BlobCorrupted,
    BlobNotFound,
    CodecError,
    IndexArgumentError,
    InvalidBlobId,
    InvalidRecordGroup,
    SigningKeyError,
    StorageError,
    StorageUnavailable,
    StoreClosed,
    StoreDown,
    StoreURIError,
)
from storage.fsutil import atomic_write
from storage.index import IndexStats, L4Index, MissReason, VerifiedBlob
from storage.l4 import open_l4
from storage.local import LocalStore
from storage.memory import MemoryStore
from storage.outage import Outage, OutageLatch
from storage.protocol import BlobStore, RecordStore, blob_id_of
from storage.records import IndexRecord
from storage.registry import Backend, open_store, register_backend, schemes, validate_uri
from storage.signing import KeyRing, key_id_of, public_key_hex
from storage.split import SplitStore
from storage.tiered import TieredStore, TierHealth

__all__ = [
    "Backend",
    "BackendNotInstalled",
    "BlobCorrupted",
    "BlobNotFound",
    "BlobStore",
    "CodecError",
    "IndexArgumentError",
    "IndexRecord",
    "IndexStats",
    "InvalidBlobId",
    "InvalidRecordGroup",
    "KeyRing",
    "L4Index",
    "LocalStore",
    "MemoryStore",
    "MissReason",
    "Outage",
    "OutageLatch",
    "RecordStore",
    "SigningKeyError",
    "SplitStore",
    "StorageError",
    "StorageUnavailable",
    "StoreClosed",
    "StoreDown",
    "StoreURIError",
    "TierHealth",
    "TieredStore",
    "VerifiedBlob",
    "atomic_write",
    "blob_id_of",
    "key_id_of",
    "open_l4",
    "open_store",
    "public_key_hex",
    "register_backend",
    "schemes",
    "validate_uri",
]
