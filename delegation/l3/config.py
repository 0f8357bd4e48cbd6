"""`[delegation.l3]`: the contextual cache's configuration, a frozen dataclass.

    [delegation.l3]
    enabled = true
    exploration = 0.1          # UCB's exploration weight (rewards are in [0, 1])
    discount = 0.95            # weight kept by older outcomes at each new one
    latency_target_ms = 1000   # latency scale of the reward when a context names none
    ttl_s = 86400              # a context's table is forgotten this long after its last use
    max_entries = 10000        # tables (function, context) kept, least recently used first
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from delegation.errors import ConfigError
from delegation.tomllines import KeyPath, TableReader

L3_PATH: KeyPath = ("delegation", "l3")
_KEYS = ("enabled", "exploration", "discount", "latency_target_ms", "ttl_s", "max_entries")


@dataclass(frozen=True)
class L3Config:
    """The contextual cache's settings (see the module docstring)."""

    enabled: bool = True
    exploration: float = 0.1
    discount: float = 0.95
    latency_target_ms: float = 1000.0
    ttl_s: float = 86_400.0
    max_entries: int = 10_000

    def __post_init__(self) -> None:
        problem = l3_problem(self)
        if problem is not None:
            raise ConfigError(problem[1], None, L3_PATH + (problem[0],), None)


def l3_problem(config: L3Config) -> tuple[str, str] | None:
    """The first invalid setting as `(key, message)`, or None."""
    if not isinstance(config.enabled, bool):
        return "enabled", "must be true or false"
    if not _number(config.exploration) or config.exploration < 0:
        return "exploration", "must be a number >= 0"
    if not _number(config.discount) or not 0.0 < config.discount <= 1.0:
        return "discount", "must be a number in (0, 1]"
    if not _number(config.latency_target_ms) or config.latency_target_ms <= 0:
        return "latency_target_ms", "must be a number > 0"
    if not _number(config.ttl_s) or config.ttl_s < 0:
        return "ttl_s", "must be a number >= 0"
    if isinstance(config.max_entries, bool) or not isinstance(config.max_entries, int) \
            or config.max_entries < 1:
        return "max_entries", "must be an integer >= 1"
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def l3_config_from_table(reader: TableReader, value: object,
                         path: KeyPath = L3_PATH) -> L3Config:
    """Read `[delegation.l3]` (absent keys take their defaults).

    Raises:
        ConfigError: an unknown key or an invalid value, naming the key and its line.
    """
    table = reader.table(value, path)
    reader.check_keys(table, path, _KEYS)
    d = L3Config()
    values: dict[str, Any] = {
        "enabled": reader.boolean(table, path, "enabled", d.enabled),
        "exploration": reader.number(table, path, "exploration", d.exploration),
        "discount": reader.number(table, path, "discount", d.discount),
        "latency_target_ms": reader.number(table, path, "latency_target_ms",
                                           d.latency_target_ms),
        "ttl_s": reader.number(table, path, "ttl_s", d.ttl_s),
        "max_entries": reader.integer(table, path, "max_entries", d.max_entries, minimum=1),
    }
    try:
        return L3Config(**values)
    except ConfigError as e:
        key = e.key[-1] if isinstance(e.key, tuple) else str(e.key)
        raise reader.error(path + (key,), e.message) from None
