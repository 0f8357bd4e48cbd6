"""Typed options for configuration tables: one place that says a key's type, default and
range, used to check the keys of a table and to read its values (built-in tables and the
ones extensions add)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from delegation.tomllines import KeyPath, TableReader

REQUIRED: Any = object()


class OptionType(StrEnum):
    """The TOML value an option takes."""

    STRING = "string"
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    STRING_LIST = "string-list"
    URL = "url"


@dataclass(frozen=True)
class Option:
    """One key of a configuration table.

    A `required` option must be present; otherwise `default` is used when it is absent.
    Numbers are finite and >= 0 (> 0 if `positive`), within `minimum`..`maximum` if given.
    """

    type: OptionType
    required: bool = False
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False
    help: str = ""


def read_options(reader: TableReader, table: dict[str, Any], path: KeyPath,
                 options: Mapping[str, Option]) -> Mapping[str, Any]:
    """Check `table`'s keys against `options` and read every option (defaults filled in).

    Raises:
        ConfigError: an unknown or missing key, or a value of the wrong type or range; the
            error names the key path and its line.
    """
    reader.check_keys(table, path, tuple(options))
    return MappingProxyType({key: read_option(reader, table, path, key, option)
                             for key, option in options.items()})


def read_option(reader: TableReader, table: dict[str, Any], path: KeyPath, key: str,
                option: Option) -> Any:
    """Read one option's value (its default when absent and not required)."""
    default = REQUIRED if option.required else option.default
    if key not in table:
        if option.required:
            raise reader.error(path, f"missing required key {key!r}")
        return default
    kind = option.type
    if kind is OptionType.NUMBER:
        value: Any = reader.number(table, path, key, default, positive=option.positive,
                                   maximum=option.maximum)
        if option.minimum is not None and value < option.minimum:
            raise reader.error(path + (key,), f"must be >= {option.minimum:g}, not {value:g}")
        return value
    if kind is OptionType.INTEGER:
        maximum = int(option.maximum) if option.maximum is not None else None
        minimum = int(option.minimum) if option.minimum is not None else (1 if option.positive
                                                                           else 0)
        return reader.integer(table, path, key, default, minimum=minimum, maximum=maximum)
    if kind is OptionType.BOOLEAN:
        return reader.boolean(table, path, key, default)
    if kind is OptionType.STRING_LIST:
        return reader.string_list(table, path, key, default)
    value = reader.string(table, path, key, default)
    if kind is OptionType.URL and not _is_http_url(value):
        raise reader.error(path + (key,), f"{value!r} is not an http(s) URL")
    return value


def _is_http_url(value: str) -> bool:
    return re.fullmatch(r"https?://[^/\s]+(/\S*)?", value) is not None
