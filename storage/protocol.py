"""The `BlobStore` protocol and the content-address helpers every backend shares."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import xxhash

from storage.errors import BlobCorrupted, InvalidBlobId, InvalidRecordGroup

_ID_RE = re.compile(r"[0-9a-f]{32}")
_GROUP_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}/[0-9a-f]{1,128}")


def blob_id_of(data: bytes | bytearray | memoryview) -> str:
    """Return the content address of `data`: the xxh3_128 digest as 32 lowercase hex digits."""
    return xxhash.xxh3_128_hexdigest(data)


def is_blob_id(value: object) -> bool:
    """True if `value` is a well-formed blob id (32 lowercase hex digits)."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def check_blob_id(value: object) -> str:
    """Return `value` if it is a well-formed blob id, else raise `InvalidBlobId`."""
    if not is_blob_id(value):
        raise InvalidBlobId(value)
    return value  # type: ignore[return-value]


def check_group(group: object) -> str:
    """Return a record group name (`"<namespace>/<hex>"`) if well-formed, else raise."""
    if not isinstance(group, str) or _GROUP_RE.fullmatch(group) is None:
        raise InvalidRecordGroup(group)
    return group


def as_bytes(data: object) -> bytes:
    """Return `data` as immutable bytes; anything but a bytes-like object is a `TypeError`."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"blob data must be bytes-like, not {type(data).__name__}")


def verified(blob_id: str, data: bytes, store: str) -> bytes:
    """Return `data` if it hashes to `blob_id`, else raise `BlobCorrupted`."""
    actual = blob_id_of(data)
    if actual != blob_id:
        raise BlobCorrupted(blob_id, actual, store)
    return data


@runtime_checkable
class BlobStore(Protocol):
    """A content-addressed blob store.

    A blob's id is `blob_id_of(bytes)`: the xxh3_128 hex digest of exactly the stored bytes.
    Ids are addresses, not authentication: the L4 index adds SHA-256 and signatures on top.

    Attributes:
        uri: the URI the store was opened with (used in error messages and pointers).

    Methods raise `StorageUnavailable` when the backend cannot be reached, `StoreClosed` after
    `close()`, and `InvalidBlobId` for an id that is not 32 lowercase hex digits.

    A store pickles as its configuration (URI, options), never as its connections: the copy
    (e.g. in a Ray worker) opens its own clients and sees the same blobs.
    """

    uri: str

    def put(self, data: bytes) -> str:
        """Store `data` and return its blob id. Idempotent: storing it again is a no-op.

        Raises:
            TypeError: `data` is not bytes-like.
        """
        ...

    def get(self, blob_id: str) -> bytes:
        """Return the bytes stored under `blob_id`, verified against the id.

        Raises:
            BlobNotFound: no such blob (also a `KeyError`).
            BlobCorrupted: the stored bytes do not hash to `blob_id`; they are not returned.
        """
        ...

    def contains(self, blob_id: str) -> bool:
        """True if a blob with this id is stored (its bytes are not read or verified)."""
        ...

    def delete(self, blob_id: str) -> None:
        """Remove a blob.

        Raises:
            BlobNotFound: no such blob.
        """
        ...

    def iterate(self) -> Iterator[str]:
        """Yield the id of every stored blob, each once, in no particular order."""
        ...

    def pointer(self, blob_id: str) -> str:
        """Return a URI that locates this blob outside the store object.

        `file:///dir/blobs/<id>`, `s3://bucket/prefix/blobs/<id>`, `ipfs://<CID>` or
        `memory://<name>/<id>`; the L4 index keeps it in each record.

        Raises:
            BlobNotFound: no such blob (an IPFS pointer needs the blob's CID).
        """
        ...

    def fetch_pointer(self, pointer: str, blob_id: str) -> bytes:
        """Fetch a blob through a pointer written by any store of this kind, verified.

        This is how a machine that has not seen the blob resolves an index record, e.g. an
        `ipfs://CID` published through another daemon.

        Raises:
            BlobNotFound: nothing at the pointer.
            BlobCorrupted: the bytes do not hash to `blob_id`.
            StoreURIError: the pointer is not one this store can follow.
        """
        ...

    def close(self) -> None:
        """Release connections and files. Idempotent; every later call raises `StoreClosed`."""
        ...


@runtime_checkable
class RecordStore(Protocol):
    """Small immutable records kept in named groups: the storage side of the L4 index.

    A record's id is the xxh3_128 hex digest of its bytes, and it lives at
    `<group>/<record id>`, one object per record. Writers never read-modify-write a shared
    object, so concurrent writers to one group never lose each other's records. A group is
    `"<namespace>/<lowercase hex>"`, e.g. `"iface/<interface hash>"`.
    """

    def put_record(self, group: str, data: bytes) -> str:
        """Store a record in `group` and return its id. Idempotent."""
        ...

    def get_record(self, group: str, record_id: str) -> bytes:
        """Return a record's bytes, verified against its id.

        Raises:
            BlobNotFound: no such record.
            BlobCorrupted: its bytes do not hash to `record_id`.
        """
        ...

    def list_records(self, group: str) -> list[str]:
        """Return the ids of every record in `group` (empty if the group has none)."""
        ...
