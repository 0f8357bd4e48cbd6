"""Canonical msgpack and index records: round trips, and no input crashes the decoder."""

from __future__ import annotations

import math

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import CodecError, IndexRecord
from storage.codec import pack, unpack

hex32 = st.text("0123456789abcdef", min_size=32, max_size=32)
hex64 = st.text("0123456789abcdef", min_size=64, max_size=64)
records = st.builds(
    IndexRecord,
    interface_hash=hex32,
    source_hash=hex32,
    blob_id=hex32,
    sha256=hex64,
    pointer=st.text(min_size=1, max_size=200),
    key_id=st.one_of(st.just(""), hex32),
    signature=st.one_of(st.just(b""), st.binary(min_size=64, max_size=64)),
    created_at=st.floats(allow_nan=False, allow_infinity=False),
    size=st.integers(min_value=0, max_value=(1 << 63) - 1),
)


@settings(deadline=None)  # a shared, noisy CI machine
@given(records)
def test_records_round_trip(record: IndexRecord) -> None:
    data = record.encode()
    assert IndexRecord.decode(data) == record
    assert data[0] == 0x9A and data[1] == 0x01  # an array of 10 led by format version 1


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_crash_the_record_decoder(data: bytes) -> None:
    try:
        IndexRecord.decode(data)
    except CodecError:
        pass


@settings(max_examples=300, deadline=None)
@given(records, st.integers(min_value=0, max_value=300), st.integers(0, 255))
def test_damaged_records_decode_or_raise_codec_error(record: IndexRecord, at: int, byte: int):
    data = bytearray(record.encode())
    data[at % len(data)] = byte
    try:
        decoded = IndexRecord.decode(bytes(data))
    except CodecError:
        return
    assert isinstance(decoded, IndexRecord)


@settings(deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(),
            st.floats(allow_nan=False),
            st.binary(),
            st.text(),
            st.booleans(),
            st.none(),
        )
    )
)
def test_pack_keeps_types_distinct(values: list) -> None:
    back = unpack(pack([1, *values]), "test")
    assert back[1:] == values
    assert [type(v) for v in back[1:]] == [type(v) for v in values]


def test_big_integers_use_the_extension_type() -> None:
    big = [1, 1 << 64, -(1 << 70), (1 << 64) - 1, -(1 << 63)]
    data = pack(big)
    assert unpack(data, "big ints") == big
    assert msgpack.unpackb(data, strict_map_key=False)[1].code == 1  # ext type 1


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([2, *["0" * 32] * 9], "format version"),
        ([True, *["0" * 32] * 9], "format version"),
        ([1, "x"], "expected 10 items"),
        ({"a": 1}, "expected an array"),
    ],
)
def test_wrong_shapes_name_the_problem(items: object, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        IndexRecord.decode(msgpack.packb(items))


def test_int_where_float_is_required_is_refused() -> None:
    fields = [1, "0" * 32, "0" * 32, "0" * 32, "0" * 64, "file:///x", "", b"", 5, 1]
    with pytest.raises(CodecError, match="created_at"):
        IndexRecord.decode(pack(fields))
    fields[8] = math.inf
    with pytest.raises(CodecError, match="created_at"):
        IndexRecord.decode(pack(fields))
