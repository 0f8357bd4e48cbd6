"""The L4 index: interface hash -> published versions, source hash -> blob, all signed.

Each `publish` stores the bytes as a blob and writes one signed `IndexRecord` twice, in the
groups `iface/<interface hash>` and `source/<source hash>` of the store's `RecordStore` side:
one object per version, so concurrent publishers never overwrite each other. A lookup reads a
group's records newest first and returns the first that passes every check: the record
decodes and is filed under the hash asked for, its key is trusted and not revoked, its
signature verifies, and the blob exists, hashes to its id, and has the record's SHA-256 and
size. Every record that fails is a miss: counted by reason in `stats()` and logged.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from cachetools import LRUCache
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from storage.errors import BlobCorrupted, BlobNotFound, CodecError, StoreURIError
from storage.outage import Outage
from storage.records import IndexRecord, check_hash
from storage.signing import KeyRing

log = logging.getLogger(__name__)
_RECORD_CACHE_SIZE = 4096


class MissReason(StrEnum):
    """Why a lookup found nothing usable, or why one record was refused."""

    NOT_FOUND = "not_found"  # no record for this hash (or for the pinned blob id)
    MALFORMED = "malformed"  # undecodable, corrupted, or filed under another hash
    UNSIGNED = "unsigned"
    UNTRUSTED_KEY = "untrusted_key"
    REVOKED_KEY = "revoked_key"
    BAD_SIGNATURE = "bad_signature"  # tampered record or forged signature
    BLOB_MISSING = "blob_missing"
    BLOB_CORRUPTED = "blob_corrupted"  # bytes do not hash to the blob id
    DIGEST_MISMATCH = "digest_mismatch"  # SHA-256 or size differ from the signed record


@dataclass(frozen=True)
class VerifiedBlob:
    """Bytes that passed every check, with the record that vouches for them."""

    data: bytes
    record: IndexRecord


@dataclass(frozen=True)
class IndexStats:
    """Counters of an `L4Index`.

    `misses` counts failed lookups by the reason of their newest candidate (`not_found` when
    there was none); `rejected` counts every refused record by its reason.
    """

    lookups: int
    hits: int
    misses: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)


class _Rejected(Exception):
    def __init__(self, reason: MissReason, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


class L4Index:
    """Publish and look up signed compiled code in a blob store.

    Args:
        store: a `BlobStore` that is also a `RecordStore` (every store `open_store` returns).
        signing_key: the key `publish` signs with; it is also trusted for lookups unless
            revoked. None makes a fresh key for this object (see `open_l4` for a persistent
            per-store key).
        keyring: trusted and revoked keys (default: trust only `signing_key`).
        clock: returns `created_at` for new records (seconds since the epoch).
    """

    def __init__(
        self,
        store: Any,
        *,
        signing_key: Ed25519PrivateKey | None = None,
        keyring: KeyRing | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.signing_key = signing_key or Ed25519PrivateKey.generate()
        self.keyring = keyring or KeyRing()
        self.key_id = self.keyring.trust(self.signing_key.public_key())
        self.clock = clock
        self._lock = threading.Lock()
        self._lookups = 0
        self._hits = 0
        self._misses: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        # Records are immutable and named by their hash, so a cached decode never goes stale.
        self._records: LRUCache[tuple[str, str], IndexRecord] = LRUCache(_RECORD_CACHE_SIZE)

    def publish(self, interface_hash: str, source_hash: str, data: bytes) -> IndexRecord:
        """Store `data` and a signed record for it under both hashes; return the record.

        Args:
            interface_hash: xxh3_128 hex of the function's interface (what callers know).
            source_hash: xxh3_128 hex of its source and compiler (the compile cache key).
            data: the bytes to publish (e.g. msgpack bytecode).

        Raises:
            IndexArgumentError: a hash is not 32 hex digits.
            StorageUnavailable: the store cannot be written.
        """
        iface = check_hash("interface_hash", interface_hash)
        source = check_hash("source_hash", source_hash)
        blob_id = self.store.put(data)
        unsigned = IndexRecord(
            iface,
            source,
            blob_id,
            hashlib.sha256(data).hexdigest(),
            self.store.pointer(blob_id),
            self.key_id,
            b"",
            float(self.clock()),
            len(data),
        )
        signature = self.signing_key.sign(unsigned.signed_payload())
        record = replace(unsigned, signature=signature)
        encoded = record.encode()
        self.store.put_record(f"iface/{iface}", encoded)
        self.store.put_record(f"source/{source}", encoded)
        return record

    def lookup_interface(
        self, interface_hash: str, pin_blob_id: str | None = None
    ) -> VerifiedBlob | None:
        """The newest trusted version of an interface, or None (a miss, counted).

        Args:
            interface_hash: xxh3_128 hex of the interface.
            pin_blob_id: only consider versions whose blob has this id.

        Raises:
            IndexArgumentError: a hash is not 32 hex digits.
            StorageUnavailable: the store cannot be read (a tiered store still answers
                from its local directory when only the remote is down).
        """
        iface = check_hash("interface_hash", interface_hash)
        pin = None if pin_blob_id is None else check_hash("pin_blob_id", pin_blob_id)
        return self._lookup("iface", iface, pin)

    def lookup_source(self, source_hash: str) -> VerifiedBlob | None:
        """The newest trusted blob compiled from this source hash, or None (a miss, counted).

        Raises:
            IndexArgumentError: the hash is not 32 hex digits.
            StorageUnavailable: the store cannot be read.
        """
        return self._lookup("source", check_hash("source_hash", source_hash), None)

    def versions(self, interface_hash: str) -> list[IndexRecord]:
        """Every decodable record of an interface, newest first, trusted or not (for `ls`)."""
        iface = check_hash("interface_hash", interface_hash)
        return self._candidates(f"iface/{iface}", "interface_hash", iface, None)[0]

    @property
    def outage(self) -> Outage | None:
        """Why the store is down (URI, first cause, latch period), or None while it answers.

        While it is down every call that needs it raises `StoreDown` at once; a caller that
        finds nothing can say "missing because L4 (<uri>) is down: <cause>".
        """
        return getattr(self.store, "outage", None)

    def close(self) -> None:
        """Close the store; later calls raise `StoreClosed`. Idempotent."""
        self.store.close()

    def stats(self) -> IndexStats:
        """A snapshot of the lookup, hit, miss and rejection counters."""
        with self._lock:
            return IndexStats(self._lookups, self._hits, dict(self._misses), dict(self._rejected))

    def _lookup(self, kind: str, hash_hex: str, pin: str | None) -> VerifiedBlob | None:
        attr = "interface_hash" if kind == "iface" else "source_hash"
        records, malformed = self._candidates(f"{kind}/{hash_hex}", attr, hash_hex, pin)
        first_reason = MissReason.MALFORMED if malformed and not records else None
        for record in records:
            try:
                found = VerifiedBlob(self._verified_bytes(record), record)
            except _Rejected as e:
                self._reject(record, e)
                first_reason = first_reason or e.reason
                continue
            self._count(hit=True)
            return found
        self._count(hit=False, reason=first_reason or MissReason.NOT_FOUND)
        return None

    def _candidates(
        self, group: str, attr: str, hash_hex: str, pin: str | None
    ) -> tuple[list[IndexRecord], int]:
        """Decoded records of a group, newest first, and how many were malformed."""
        records, malformed = [], 0
        for record_id in self.store.list_records(group):
            try:
                record = self._record(group, record_id)
                if getattr(record, attr) != hash_hex:
                    raise CodecError("index record", f"filed under {group} but names another")
            except (CodecError, BlobCorrupted, BlobNotFound) as e:
                self._reject_raw(group, record_id, e)
                malformed += 1
                continue
            if pin is None or record.blob_id == pin:
                records.append(record)
        records.sort(key=lambda r: (r.created_at, r.encode()), reverse=True)
        return records, malformed

    def _record(self, group: str, record_id: str) -> IndexRecord:
        key = (group, record_id)
        with self._lock:
            record = self._records.get(key)
        if record is None:
            record = IndexRecord.decode(self.store.get_record(group, record_id))
            with self._lock:
                self._records[key] = record
        return record

    def _verified_bytes(self, record: IndexRecord) -> bytes:
        if not record.signature or not record.key_id:
            raise _Rejected(MissReason.UNSIGNED, "record carries no signature")
        status = self.keyring.status(record.key_id)
        if status != "trusted":
            reason = MissReason.REVOKED_KEY if status == "revoked" else MissReason.UNTRUSTED_KEY
            raise _Rejected(reason, f"key {record.key_id} is {status}")
        if not self.keyring.verify(record.key_id, record.signature, record.signed_payload()):
            raise _Rejected(MissReason.BAD_SIGNATURE, f"signature of key {record.key_id} fails")
        data = self._fetch(record)
        if len(data) != record.size or hashlib.sha256(data).hexdigest() != record.sha256:
            raise _Rejected(MissReason.DIGEST_MISMATCH, "bytes differ from the signed SHA-256")
        return data

    def _fetch(self, record: IndexRecord) -> bytes:
        try:
            try:
                return self.store.get(record.blob_id)
            except BlobNotFound:
                return self.store.fetch_pointer(record.pointer, record.blob_id)
        except (BlobNotFound, StoreURIError) as e:
            raise _Rejected(MissReason.BLOB_MISSING, str(e)) from None
        except BlobCorrupted as e:
            raise _Rejected(MissReason.BLOB_CORRUPTED, str(e)) from None

    def _reject(self, record: IndexRecord, error: _Rejected) -> None:
        with self._lock:
            self._rejected[str(error.reason)] += 1
        log.warning(
            "L4 index %s: refused version %s of interface %s: %s (%s)",
            self.store.uri,
            record.blob_id,
            record.interface_hash,
            error.reason,
            error.detail,
        )

    def _reject_raw(self, group: str, record_id: str, error: Exception) -> None:
        with self._lock:
            self._rejected[str(MissReason.MALFORMED)] += 1
        log.warning(
            "L4 index %s: unreadable record %s/%s: %s", self.store.uri, group, record_id, error
        )

    def _count(self, *, hit: bool, reason: MissReason | None = None) -> None:
        with self._lock:
            self._lookups += 1
            if hit:
                self._hits += 1
            else:
                self._misses[str(reason)] += 1
