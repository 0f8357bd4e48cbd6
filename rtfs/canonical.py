"""Canonical msgpack: one byte string per value, so that equal inputs hash equally.

Rules (DESIGN.md, "Keys"): arrays with a leading tag or format version, never maps whose key
order could vary; ints and floats kept distinct (msgpack does that natively; floats are always
64-bit); integers beyond 64 bits as extension type 1 (two's complement, big-endian, minimal).
"""

from __future__ import annotations

from typing import Any

import msgpack

from rtfs.errors import BytecodeError
from rtfs.values import Keyword, Map, RList, Symbol, TaggedLiteral, make_set, set_items

EXT_BIGINT = 1

# Tags of composite and named values, as the first element of their array.
T_KEYWORD, T_SYMBOL, T_VECTOR, T_LIST, T_MAP, T_SET, T_TAGGED, T_CODE = range(1, 9)

_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def _default(obj: Any) -> Any:
    if isinstance(obj, int):  # only ints msgpack cannot hold natively reach here
        size = (obj.bit_length() + 8) // 8
        return msgpack.ExtType(EXT_BIGINT, obj.to_bytes(size, "big", signed=True))
    raise TypeError(f"cannot encode {type(obj).__name__} canonically")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == EXT_BIGINT:
        if not data:
            raise BytecodeError("empty big-integer extension")
        return int.from_bytes(data, "big", signed=True)
    raise BytecodeError(f"unknown msgpack extension type {code}")


def packb(obj: Any) -> bytes:
    """Encode plain data (None, bool, int, float, str, bytes, lists) canonically."""
    return msgpack.packb(obj, use_bin_type=True, use_single_float=False, default=_default,
                         strict_types=True)


def unpackb(data: bytes, *, max_len: int | None = None) -> Any:
    """Decode bytes written by `packb`, refusing maps, unknown extensions and oversize input.

    Every length inside is bounded by the size of the input, so hostile bytes cannot make
    the decoder allocate more than a small multiple of what it was given.
    """
    limit = max_len if max_len is not None else len(data)
    try:
        return msgpack.unpackb(
            data, raw=False, use_list=True, ext_hook=_ext_hook, strict_map_key=True,
            max_bin_len=limit, max_str_len=limit,
            max_array_len=limit, max_map_len=0, max_ext_len=limit,
        )
    except BytecodeError:
        raise
    except Exception as err:  # msgpack raises several unrelated types for bad input
        raise BytecodeError(f"malformed msgpack: {err}") from err


def value_to_plain(value: Any) -> Any:
    """An RTFS value as canonical plain data (tagged arrays for everything not native)."""
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind is Keyword:
        return [T_KEYWORD, value.name]
    if kind is Symbol:
        return [T_SYMBOL, value.name]
    if kind is tuple:
        return [T_VECTOR, [value_to_plain(v) for v in value]]
    if kind is RList:
        return [T_LIST, [value_to_plain(v) for v in value]]
    if isinstance(value, Map):
        flat: list[Any] = []
        for k, v in value.items():
            flat += [value_to_plain(k), value_to_plain(v)]
        return [T_MAP, flat]
    if kind is frozenset:
        items = [value_to_plain(v) for v in set_items(value)]
        return [T_SET, sorted(items, key=packb)]
    if kind is TaggedLiteral:
        return [T_TAGGED, value.tag, value.text]
    raise TypeError(f"{kind.__name__} has no canonical encoding")


def plain_to_value(plain: Any, depth: int = 0) -> Any:
    """Inverse of `value_to_plain`; raises BytecodeError for anything it did not write."""
    if depth > 64:
        raise BytecodeError("constant nested too deeply")
    if not isinstance(plain, list):
        if isinstance(plain, bytes):
            raise BytecodeError("unexpected bytes in a constant")
        return plain
    if len(plain) < 2 or not isinstance(plain[0], int):
        raise BytecodeError("malformed tagged constant")
    tag, body = plain[0], plain[1]
    if tag in (T_KEYWORD, T_SYMBOL) and isinstance(body, str) and len(plain) == 2:
        return Keyword(body) if tag == T_KEYWORD else Symbol(body)
    if tag == T_TAGGED and len(plain) == 3 and isinstance(body, str) and isinstance(plain[2], str):
        return TaggedLiteral(body, plain[2])
    if not isinstance(body, list) or len(plain) != 2:
        raise BytecodeError(f"malformed constant with tag {tag}")
    items = [plain_to_value(item, depth + 1) for item in body]
    try:
        if tag == T_VECTOR:
            return tuple(items)
        if tag == T_LIST:
            return RList(items)
        if tag == T_MAP and len(items) % 2 == 0:
            return Map(zip(items[0::2], items[1::2]))
        if tag == T_SET:
            return make_set(items)
    except TypeError as err:  # an unhashable key: not something the encoder writes
        raise BytecodeError(f"malformed constant: {err}") from err
    raise BytecodeError(f"malformed constant with tag {tag}")
