"""`IndexRecord`: one published version of a compiled function, and its canonical encoding.

Encoded as the canonical msgpack array

    [1, interface_hash, source_hash, blob_id, sha256, pointer, key_id, signature,
     created_at, size]

with the three xxh3_128 hashes and the SHA-256 as lowercase hex strings, the signature as
bytes (64, or empty when unsigned), `created_at` a float (seconds since the epoch) and
`size` an int. The signature covers `signed_payload()`: the canonical msgpack array
`[2, interface_hash, source_hash, blob_id, sha256, created_at, size]`.

DESIGN.md names the first four fields; `created_at` and `size` are signed too (format 2) so
that whoever can write to the store cannot replay an older, genuinely signed version with a
newer `created_at` to make it win "newest trusted version" (a rollback).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from storage.codec import pack, unpack_array
from storage.errors import CodecError, IndexArgumentError

RECORD_FORMAT = 1
SIGNATURE_FORMAT = 2
MAX_POINTER_LEN = 4096
_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def check_hash(name: str, value: object) -> str:
    """Return an xxh3_128 hex hash in lowercase, or raise `IndexArgumentError` naming it."""
    if isinstance(value, str) and _HEX32.fullmatch(value.lower()):
        return value.lower()
    raise IndexArgumentError(name, value, "32 hex digits (an xxh3_128 digest)")


@dataclass(frozen=True)
class IndexRecord:
    """One published version: which bytes implement an interface, and who vouches for them."""

    interface_hash: str
    source_hash: str
    blob_id: str
    sha256: str
    pointer: str
    key_id: str
    signature: bytes
    created_at: float
    size: int

    def signed_payload(self) -> bytes:
        """The bytes the publisher signs (see the module docstring)."""
        return pack(
            [SIGNATURE_FORMAT, self.interface_hash, self.source_hash, self.blob_id, self.sha256,
             self.created_at, self.size]
        )

    def encode(self) -> bytes:
        """The record's canonical msgpack bytes (its id is their xxh3_128)."""
        return pack([RECORD_FORMAT, *self._fields()])

    def _fields(self) -> list[Any]:
        return [
            self.interface_hash,
            self.source_hash,
            self.blob_id,
            self.sha256,
            self.pointer,
            self.key_id,
            self.signature,
            self.created_at,
            self.size,
        ]

    @classmethod
    def decode(cls, data: bytes) -> IndexRecord:
        """Parse and validate encoded bytes.

        Raises:
            CodecError: not a well-formed record of a known format.
        """
        items = unpack_array(data, "index record", RECORD_FORMAT, 10)
        iface, source, blob_id, sha, pointer, key_id, sig, created_at, size = items[1:]
        for name, value in (
            ("interface_hash", iface),
            ("source_hash", source),
            ("blob_id", blob_id),
        ):
            _expect(name, isinstance(value, str) and _HEX32.fullmatch(value), "32 hex")
        _expect("sha256", isinstance(sha, str) and _HEX64.fullmatch(sha), "64 hex")
        _expect(
            "pointer",
            isinstance(pointer, str) and 0 < len(pointer) <= MAX_POINTER_LEN,
            "a URI string",
        )
        _expect(
            "key_id",
            isinstance(key_id, str) and (key_id == "" or _HEX32.fullmatch(key_id)),
            "32 hex or empty",
        )
        _expect("signature", isinstance(sig, bytes) and len(sig) in (0, 64), "0 or 64 bytes")
        _expect(
            "created_at", type(created_at) is float and math.isfinite(created_at), "a finite float"
        )
        _expect("size", type(size) is int and 0 <= size < 1 << 63, "a non-negative int")
        return cls(iface, source, blob_id, sha, pointer, key_id, sig, created_at, size)


def _expect(field: str, ok: object, what: str) -> None:
    if not ok:
        raise CodecError("index record", f"field {field} must be {what}")
