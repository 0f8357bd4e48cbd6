"""[delegation.l2]: defaults, validation naming the key, and the TOML reader with lines."""

from __future__ import annotations

import tomllib

import pytest

from delegation.errors import ConfigError
from delegation.l2.config import L2Config, l2_config_from_table
from delegation.l2.models import DEFAULT_MODEL
from delegation.tomllines import KeyLines, TableReader


def read(text: str) -> L2Config:
    data = tomllib.loads(text)
    reader = TableReader("d.toml", KeyLines(text))
    return l2_config_from_table(reader, data["delegation"]["l2"])


def test_defaults() -> None:
    config = L2Config()
    assert (config.enabled, config.model, config.namespace) == (True, DEFAULT_MODEL, "default")
    assert (config.target_false_hit_rate, config.shadow_rate) == (0.01, 0.05)
    assert (config.ttl_s, config.max_entries) == (3600.0, 10_000)


def test_reads_every_key() -> None:
    config = read("""
[delegation.l2]
enabled = false
model = "hashing-ngram-v1-d256"
namespace = "tenant-7"
target_false_hit_rate = 0.005
ttl_s = 60
max_entries = 500
shadow_rate = 0.1
min_threshold = 0.6
exact_index_max = 100
candidates = 2
""")
    assert config == L2Config(False, "hashing-ngram-v1-d256", "tenant-7", 0.005, 60.0, 500,
                              0.1, 0.6, 100, 2)


@pytest.mark.parametrize(("body", "key", "line", "message"), [
    ('model = "gpt-embeddings"', "model", 3, "unknown model"),
    ('namespace = "a b"', "namespace", 3, "namespace"),
    ("target_false_hit_rate = 1.5", "target_false_hit_rate", 3, "between 0 and 1"),
    ("target_false_hit_rate = 0", "target_false_hit_rate", 3, "between 0 and 1"),
    ("shadow_rate = 2", "shadow_rate", 3, "between 0 and 1"),
    ("max_entries = 0", "max_entries", 3, ">= 1"),
    ("ttl_s = -1", "ttl_s", 3, ">= 0"),
    ('enabled = "yes"', "enabled", 3, "true or false"),
    ("min_threshold = 3", "min_threshold", 3, "cosine"),
    ("treshold = 0.9", "treshold", 3, "unknown key"),
])
def test_errors_name_key_and_line(body: str, key: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        read(f"# l2\n[delegation.l2]\n{body}\n")
    err = info.value
    assert err.key_path == f"delegation.l2.{key}" and err.line == line
    assert message in str(err) and str(err).startswith(f"d.toml:{line}: delegation.l2.{key}")


def test_dataclass_validates_itself() -> None:
    with pytest.raises(ConfigError) as info:
        L2Config(shadow_rate=-0.1)
    assert info.value.key_path == "delegation.l2.shadow_rate"
    with pytest.raises(ConfigError):
        L2Config(candidates=0)
