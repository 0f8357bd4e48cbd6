"""The call context L3 keys on: who calls, where, and under which constraints.

A context is a flat mapping of names to strings, numbers or booleans, declared per run
(`[delegation.context]`, `delegation run --context '{...}'`) and per call (`^{:context {...}}`
metadata; a call's keys override the run's). The known keys are checked:

    tenant                               a name: also the tenant's L2 namespace
    environment, data_locality           strings
    budget                               cost allowed per call, a number >= 0
    latency_target_ms                    a number > 0

Any other key is allowed (a string, number or boolean) and takes part in the fingerprint, so
two calls share an L3 entry only when every declared key agrees.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import msgpack
import xxhash

from delegation.l2.config import NAMESPACE
from delegation.l2.errors import ContextError
from delegation.tomllines import KeyPath, TableReader

FINGERPRINT_FORMAT = 1
CONTEXT_PATH: KeyPath = ("delegation", "context")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_STRING_KEYS = ("tenant", "environment", "data_locality")

Scalar = str | int | float | bool


@dataclass(frozen=True)
class Context:
    """A validated, immutable call context (see the module docstring)."""

    values: Mapping[str, Scalar]

    @property
    def fingerprint(self) -> str:
        """16 hex digits of xxh3_64 over the canonical msgpack of the sorted items."""
        items = [[k, self.values[k]] for k in sorted(self.values)]
        return format(xxhash.xxh3_64_intdigest(msgpack.packb([FINGERPRINT_FORMAT, items])),
                      "016x")

    @property
    def budget(self) -> float | None:
        """Cost allowed per call, if declared."""
        value = self.values.get("budget")
        return float(value) if value is not None else None

    @property
    def latency_target_s(self) -> float | None:
        """The latency target in seconds, if declared."""
        value = self.values.get("latency_target_ms")
        return float(value) / 1000.0 if value is not None else None

    def merged(self, call: Context) -> Context:
        """This (run) context with a call's keys on top."""
        return Context(MappingProxyType({**self.values, **call.values}))

    def describe(self) -> str:
        """`{tenant=acme, environment=prod}`, keys sorted."""
        return "{" + ", ".join(f"{k}={self.values[k]}" for k in sorted(self.values)) + "}"


EMPTY_CONTEXT = Context(MappingProxyType({}))


def make_context(values: Mapping[str, Any]) -> Context:
    """Validate `values` into a `Context`.

    Raises:
        ContextError: a bad key or value, named.
    """
    checked: dict[str, Scalar] = {}
    for key, value in values.items():
        checked[key] = _check(key, value)
    return Context(MappingProxyType(checked))


def _check(key: object, value: object) -> Scalar:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ContextError(repr(key), "a key is a name of letters, digits, '_', '-'")
    if key in _STRING_KEYS and not isinstance(value, str):
        raise ContextError(key, "must be a string")
    if key == "tenant" and not (isinstance(value, str) and NAMESPACE.fullmatch(value)):
        raise ContextError(key, "a tenant is 1-64 letters, digits, '_', '.', '-' starting "
                           "with a letter or digit (it names the tenant's L2 namespace)")
    if key == "budget" and not (_number(value) and value >= 0):  # type: ignore[operator]
        raise ContextError(key, "must be a number >= 0")
    if key == "latency_target_ms" and not (_number(value) and value > 0):  # type: ignore[operator]
        raise ContextError(key, "must be a number > 0")
    if not isinstance(value, (str, int, float, bool)) or (
            isinstance(value, float) and not math.isfinite(value)):
        raise ContextError(key, "must be a string, number or boolean")
    return value


def _number(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def context_from_json(text: str) -> Context:
    """`--context '{"tenant": "acme"}'`.

    Raises:
        ContextError: not a JSON object of valid keys and values.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ContextError("--context", f"not JSON: {e.msg}") from None
    if not isinstance(data, dict):
        raise ContextError("--context", "takes a JSON object such as '{\"tenant\": \"acme\"}'")
    return make_context(data)


def context_from_table(reader: TableReader, value: object,
                       path: KeyPath = CONTEXT_PATH) -> Context:
    """`[delegation.context]`.

    Raises:
        delegation.errors.ConfigError: a bad key or value, naming it and its line.
    """
    table = reader.table(value, path)
    for key, item in table.items():
        try:
            _check(key, item)
        except ContextError as e:
            raise reader.error(path + (key,), e.reason) from None
    return Context(MappingProxyType(dict(table)))
