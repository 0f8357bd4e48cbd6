"""Data helpers of the specification's standard library: JSON, `type-name`, `numbers`,
`find`, `validate`, and error values (`error`, `RuntimeError.` and kin, `with-context`)."""

from __future__ import annotations

import json
import math
from typing import Any

from rtfs import typecheck, types
from rtfs.errors import (
    HostError,
    RtfsError,
    RtfsRuntimeError,
    RtfsTypeError,
    RtfsValidationError,
    RtfsValueError,
    UserError,
)
from rtfs.ops import ErrorValue
from rtfs.printer import to_display, to_readable
from rtfs.stdlib import builtin
from rtfs.stdlib.core import expect_int
from rtfs.stdlib.seqs import MAX_RANGE
from rtfs.stdlib.strings import expect_string
from rtfs.values import Keyword, Map, RList, Symbol, map_assoc, set_items, type_name

_MAX_JSON_DEPTH = 512


@builtin("type-name")
def type_name_of(x: Any) -> str:
    """The name of a value's type as a keyword's text: ":int", ":vector", ..."""
    return ":" + type_name(x)


@builtin("numbers")
def numbers(start: Any, end: Any) -> tuple[int, ...]:
    """The integers from `start` to `end`, both included."""
    first, last = expect_int("numbers", start), expect_int("numbers", end)
    if last - first >= MAX_RANGE:
        raise RtfsValueError(f"numbers of more than {MAX_RANGE} items")
    return tuple(range(first, last + 1))


@builtin("find")
def find(coll: Any, key: Any) -> tuple[Any, Any] | None:
    """The entry [key value] of `key` in a map (or index in a vector), or nil."""
    if isinstance(coll, Map):
        if key in coll:
            return (key, coll[key])
        return None
    if type(coll) is tuple:
        if type(key) is int and 0 <= key < len(coll):
            return (key, coll[key])
        return None
    if coll is None:
        return None
    raise RtfsTypeError(f"find expects a map or a vector, got {type_name(coll)}")


# -- JSON --------------------------------------------------------------------------------------
@builtin("parse-json")
def parse_json(text: Any) -> Any:
    """The RTFS value a JSON text denotes: objects are maps with keyword keys, arrays vectors."""
    source = expect_string("parse-json", text)
    try:
        data = json.loads(source, parse_constant=_no_constant)
    except (ValueError, RecursionError) as err:
        raise RtfsValueError(f"parse-json: not JSON: {err}") from err
    return _from_json(data, 0)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _from_json(data: Any, depth: int) -> Any:
    if depth > _MAX_JSON_DEPTH:
        raise RtfsValueError(f"parse-json: nested deeper than {_MAX_JSON_DEPTH}")
    if isinstance(data, dict):
        return Map([(Keyword(k), _from_json(v, depth + 1)) for k, v in data.items()])
    if isinstance(data, list):
        return tuple(_from_json(v, depth + 1) for v in data)
    return data


@builtin("serialize-json")
def serialize_json(value: Any) -> str:
    """JSON text for a value: keyword keys and keyword values by their name, lists and sets as
    arrays (sets in a stable order); functions, NaN and infinities have no JSON form."""
    try:
        return json.dumps(_to_json(value, 0), ensure_ascii=False, allow_nan=False)
    except ValueError as err:
        raise RtfsValueError(f"serialize-json: {err}") from err


def _to_json(value: Any, depth: int) -> Any:
    if depth > _MAX_JSON_DEPTH:
        raise RtfsValueError(f"serialize-json: nested deeper than {_MAX_JSON_DEPTH}")
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        if math.isnan(value) or math.isinf(value):
            raise RtfsValueError(f"serialize-json: {to_readable(value)} has no JSON form")
        return value
    if kind is Keyword or kind is Symbol:
        return value.name
    if kind is tuple or kind is RList:
        return [_to_json(v, depth + 1) for v in value]
    if kind is frozenset:
        return [_to_json(v, depth + 1) for v in sorted(set_items(value), key=to_readable)]
    if isinstance(value, Map):
        return {_json_key(k): _to_json(v, depth + 1) for k, v in value.items()}
    raise RtfsTypeError(f"serialize-json: a {type_name(value)} has no JSON form")


def _json_key(key: Any) -> str:
    if type(key) is Keyword:
        return key.name
    if type(key) is str:
        return key
    if type(key) is int:
        return str(key)
    raise RtfsTypeError(f"serialize-json: a {type_name(key)} cannot be a JSON object key")


# -- types -------------------------------------------------------------------------------------
@builtin("validate", needs_vm=True)
def validate(ex: Any, schema: Any, value: Any) -> bool:
    """Whether `value` has the type the type expression `schema` denotes (a keyword, a
    vector such as [:vector :int], a map {:name :string}, an alias name as a keyword)."""
    try:
        parsed = types.parse(schema)
    except types.TypeExpressionError as err:
        raise RtfsValueError(f"validate: {err.message}") from err
    return typecheck.conforms(parsed, value, typecheck.alias_lookup(ex.vm.globals, strict=True))


# -- error values --------------------------------------------------------------------------------
@builtin("error")
def error(message: Any, data: Any = None) -> None:
    """Signal a RuntimeError with this message (and optional data, a map: `(:data e)`)."""
    raise RtfsRuntimeError(to_display(message), None, None, _data(data))


def _data(data: Any) -> Map | None:
    if data is not None and not isinstance(data, Map):
        raise RtfsTypeError(f"error data is a map, got {type_name(data)}")
    return data


def _with_data(err: RtfsError, data: Any) -> ErrorValue:
    value = ErrorValue.of(err)
    if data is None:
        return value
    return _rewrap(value, Map([(Keyword("data"), _data(data))]))


def _rewrap(value: ErrorValue, extra: Map) -> ErrorValue:
    result = ErrorValue(map_assoc(value, extra.items()))
    result.error = value.error
    return result


def _constructor(cls: type[RtfsError]) -> Any:
    def construct(message: Any, data: Any = None) -> ErrorValue:
        if cls is RtfsRuntimeError:
            return ErrorValue.of(RtfsRuntimeError(to_display(message), None, None, _data(data)))
        return _with_data(cls(to_display(message)), data)

    return construct


for _name, _cls in (("RuntimeError.", RtfsRuntimeError), ("Exception.", RtfsRuntimeError),
                    ("HostError.", HostError), ("ValidationError.", RtfsValidationError),
                    ("TypeError.", RtfsTypeError), ("UserError.", UserError)):
    builtin(_name)(_constructor(_cls))


@builtin("with-context")
def with_context(err: Any, context: Any) -> ErrorValue:
    """The caught error `err` with `context` merged into its :context map."""
    if not isinstance(err, ErrorValue):
        raise RtfsTypeError(f"with-context takes a caught error, got {type_name(err)}")
    if not isinstance(context, Map):
        raise RtfsTypeError(f"with-context takes a map of context, got {type_name(context)}")
    merged = map_assoc(err.get(Keyword("context")) or Map(), context.items())
    copy = type(err.error)(*err.error.args)  # a copy that keeps its context when rethrown
    copy.context = merged  # type: ignore[attr-defined]
    return ErrorValue.of(copy)
