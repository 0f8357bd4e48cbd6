"""Canonical msgpack: the one encoding `storage` writes.

Every structure is an array whose first element is its format version, never a map (whose
key order could vary). Ints and floats stay distinct, bytes stay bytes (bin type), strings
stay str, and integers beyond 64 bits are a msgpack extension (type 1: signed big-endian
two's complement). Decoding never raises anything but `CodecError`.
"""

from __future__ import annotations

from typing import Any

import msgpack

from storage.errors import CodecError

BIGINT_EXT = 1


def _default(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return list(obj)
    if type(obj) is int:  # only reached when it does not fit 64 bits
        length = (obj.bit_length() + 8) // 8
        return msgpack.ExtType(BIGINT_EXT, obj.to_bytes(length, "big", signed=True))
    raise TypeError(f"cannot encode {type(obj).__name__} in canonical msgpack")


def _ext_hook(code: int, data: bytes) -> Any:
    if code != BIGINT_EXT:
        raise ValueError(f"unknown msgpack extension type {code}")
    return int.from_bytes(data, "big", signed=True)


def pack(obj: Any) -> bytes:
    """Encode `obj` (lists, tuples, str, bytes, int, float, bool, None) canonically."""
    return msgpack.packb(obj, use_bin_type=True, strict_types=True, default=_default)


def unpack(data: bytes, what: str) -> Any:
    """Decode one canonical msgpack value; anything malformed is a `CodecError` naming `what`."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(what, f"expected bytes, got {type(data).__name__}")
    try:
        return msgpack.unpackb(
            data, raw=False, use_list=True, strict_map_key=True, ext_hook=_ext_hook
        )
    except (ValueError, TypeError, OverflowError) as e:  # ExtraData, FormatError, ...
        raise CodecError(what, f"{type(e).__name__}: {e}") from None


def unpack_array(data: bytes, what: str, fmt: int, length: int) -> list[Any]:
    """Decode an array of `length` items whose first item is format version `fmt`."""
    value = unpack(data, what)
    if not isinstance(value, list):
        raise CodecError(what, f"expected an array, got {type(value).__name__}")
    if len(value) != length:
        raise CodecError(what, f"expected {length} items, got {len(value)}")
    if type(value[0]) is not int or value[0] != fmt:
        raise CodecError(what, f"unsupported format version {value[0]!r} (expected {fmt})")
    return value
