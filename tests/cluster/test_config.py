"""`[delegation.cluster]`: validated like the rest of `delegation.toml` (key, line, range),
registered by the cluster extension without importing Ray."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from cluster.config import CONFIG_SECTION, ClusterConfig
from delegation.config import parse_config
from delegation.errors import ConfigError
from delegation.extensions import Extensions

TABLE = """
[delegation]
cache_ttl = 60

[delegation.cluster]
address = "127.0.0.1:6379"
namespace = "team-a"
shards = 5
replication = 3
near_cache_ttl_s = 2.5
"""


def extension() -> Extensions:
    ext = Extensions()
    ext.add_config_section(CONFIG_SECTION)
    return ext


def test_the_table_is_read_with_defaults_filled_in() -> None:
    config = ClusterConfig.from_sections(parse_config(TABLE, extensions=extension()).sections)
    assert config == ClusterConfig(address="127.0.0.1:6379", namespace="team-a", shards=5,
                                   replication=3, near_cache_ttl_s=2.5)
    assert config.replication_for(5) == 3 and config.flush_interval_s == 0.05
    assert config.l2_max_entries == 20_000
    default = ClusterConfig.from_sections(parse_config("", extensions=extension()).sections)
    assert default == ClusterConfig() and default.replication_for(1) == 1
    assert default.replication_for(4) == 2
    with pytest.raises(ValueError, match="replication = 3 needs at least as many shards"):
        config.replication_for(2)


@pytest.mark.parametrize(("text", "key", "words"), [
    (TABLE.replace("shards = 5", "shards = 0"), "delegation.cluster.shards", ">= 1"),
    (TABLE.replace("shards = 5", "shards = 'five'"), "delegation.cluster.shards", "integer"),
    (TABLE.replace('namespace = "team-a"', "namespace = 7"), "delegation.cluster.namespace",
     "string"),
    (TABLE + "flush_interval_s = 0\n", "delegation.cluster.flush_interval_s", "> 0"),
    (TABLE + "shardz = 2\n", "delegation.cluster", "shardz"),
    (TABLE + "l2_max_entries = 0\n", "delegation.cluster.l2_max_entries", ">= 1"),
])
def test_a_bad_value_names_file_key_and_line(text: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="fleet.toml", extensions=extension())
    message = str(caught.value)
    assert re.match(r"fleet\.toml:\d+: ", message), message
    assert key in message and words in message, message


def test_registering_the_extension_does_not_import_ray() -> None:
    code = ("import sys; from delegation.extensions import discover; ext = discover(); "
            "assert not ext.problems, ext.problems; "
            "assert {'serve', 'cache'} <= set(ext.commands) and 'cluster' in ext.sections; "
            "assert ext.cluster_connector is not None; "
            "assert 'ray' not in sys.modules, 'ray was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def test_the_loopback_check_sees_a_socket_listening_beyond_loopback() -> None:
    from tests.cluster.conftest import non_loopback_listeners

    code = ("import socket, sys, time; s = socket.socket(); s.bind((sys.argv[1], 0)); "
            "s.listen(); print('up', flush=True); time.sleep(60)")
    for host, expected in (("0.0.0.0", True), ("127.0.0.1", False)):
        child = subprocess.Popen([sys.executable, "-c", code, host], stdout=subprocess.PIPE,
                                 text=True)
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "up"
            assert bool(non_loopback_listeners(child.pid)) is expected, host
        finally:
            child.kill()
            child.wait()
