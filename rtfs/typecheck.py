"""Checking values against type expressions where an annotation sits (CHECK_TYPE), and
type tests (IS_TYPE: match type patterns, `validate`, struct predicates). See rtfs.types for
the type expressions themselves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rtfs.errors import RtfsValidationError
from rtfs.types import ALIAS_PREFIX, UNDEFINED, Lookup, Type, TypeExpressionError, parse
from rtfs.values import Keyword


# -- checking ------------------------------------------------------------------------------------
def alias_lookup(globals_: Mapping[str, Any], *, strict: bool = False) -> Lookup:
    """Alias names -> their type expressions, from a VM's globals. An annotation naming an
    undefined type checks nothing (it is documentation); with `strict` (type tests: match
    patterns, `validate`, struct predicates) no value has an undefined type."""
    missing = UNDEFINED if strict else None
    return lambda name: globals_.get(ALIAS_PREFIX + name, missing)


def conforms(type_: Type, value: Any, lookup: Lookup) -> bool:
    """Whether `value` belongs to the type (a type that recurses too deep does not hold)."""
    try:
        return type_.check(value, lookup) is None
    except RecursionError:
        return False


def check(type_: Type, value: Any, label: str, lookup: Lookup, *, each: bool = False) -> None:
    """Raise RtfsValidationError unless `value` (every item of it, with `each`: a `& rest`
    argument, nil when empty) belongs to the type; `label` says what was checked."""
    try:
        if each:
            for index, item in enumerate(value or ()):
                failure = type_.check(item, lookup)
                if failure is not None:
                    raise RtfsValidationError(f"{label} (rest argument {index + 1}): {failure}")
            return
        failure = type_.check(value, lookup)
    except RecursionError as err:
        raise RtfsValidationError(f"{label}: the value is nested too deeply to check") from err
    if failure is not None:
        raise RtfsValidationError(f"{label}: {failure}")


def annotation_problem(spec: Any) -> str | None:
    """What is wrong with a CHECK_TYPE constant (None when nothing is): the verifier refuses
    code whose annotations do not parse."""
    if type(spec) is not tuple or len(spec) not in (2, 3) or type(spec[0]) is not str:
        return "the constant is not (label, type[, :each])"
    if len(spec) == 3 and spec[2] is not Keyword("each"):
        return "the third item of the constant is not :each"
    try:
        parse(spec[1])
    except TypeExpressionError as err:
        return err.message
    except RecursionError:
        return "the type expression is nested too deeply"
    return None


def check_annotation(code: Any, index: int, value: Any, globals_: Mapping[str, Any]) -> None:
    """Run the CHECK_TYPE whose constant is `code.consts[index]` against `value` (verified
    code only: the verifier parsed the constant)."""
    parsed = code.type_cache.get(index)
    spec = code.consts[index]
    if parsed is None:
        parsed = code.type_cache[index] = parse(spec[1])
    check(parsed, value, spec[0], alias_lookup(globals_), each=len(spec) == 3)


def test_annotation(code: Any, index: int, value: Any, globals_: Mapping[str, Any]) -> bool:
    """Whether `value` belongs to the type expression `code.consts[index]` (IS_TYPE)."""
    parsed = code.type_cache.get(index)
    if parsed is None:
        parsed = code.type_cache[index] = parse(code.consts[index])
    return conforms(parsed, value, alias_lookup(globals_, strict=True))
