"""`delegation serve --arbiter NAME [--resources JSON]` and `delegation peers`: bad input is
exit 2 with one line naming it, an unreachable fleet exit 1; the arbiter's spec carries only
what it needs of the environment. (A live fleet: test_federation, test_readme_federation.)"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cluster import peerscmd
from cluster.peers_wire import Advert
from delegation.errors import UsageError
from storage.testservers import free_port
from tests.cluster.processes import delegation


def args(**values: object) -> argparse.Namespace:
    defaults: dict[str, object] = {"arbiter": None, "resources": None, "config": None,
                                   "address": None}
    return argparse.Namespace(**{**defaults, **values})


@pytest.mark.parametrize("given, words", [
    ({"arbiter": "two words"}, "--arbiter 'two words': a name is"),
    ({"resources": '{"gpu": 1}'}, "give --arbiter NAME too"),
    ({"arbiter": "b", "resources": "{gpu: 1}"}, "--resources is not JSON"),
    ({"arbiter": "b", "resources": '{"gpu": 0}'}, "positive numbers"),
    ({"arbiter": "b", "resources": '["gpu"]'}, "JSON object"),
])
def test_bad_arbiter_options_are_usage_errors(given: dict[str, object], words: str) -> None:
    with pytest.raises(UsageError, match=words):
        peerscmd.check_serve(args(**given))


def test_the_arbiter_spec_carries_its_config_state_dir_and_only_the_env_it_needs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "node.toml"
    config.write_text('[delegation]\nstate_dir = "state"\n\n'
                      '[delegation.remote_providers.chat]\nkind = "openai-chat"\n'
                      'base_url = "http://127.0.0.1:9"\nmodel = "m"\napi_key_env = "CHAT_KEY"\n')
    monkeypatch.setenv("CHAT_KEY", "k-123")
    monkeypatch.setenv("UNRELATED_SECRET", "never sent")
    spec, settings = peerscmd.arbiter_spec(
        args(arbiter="gpu", resources='{"node_b": 1, "accel": 0.5}', config=str(config)),
        "fleet")
    assert (spec.name, spec.namespace, spec.config_text) == ("gpu", "fleet", config.read_text())
    assert spec.base_dir == str(tmp_path) and spec.state_dir == str(tmp_path / "state" /
                                                                   "arbiter-gpu")
    env = dict(spec.environ)
    assert env["CHAT_KEY"] == "k-123" and "UNRELATED_SECRET" not in env and "PATH" in env
    assert spec.resources == (("accel", 0.5), ("node_b", 1.0))
    assert settings.max_concurrency == 8


def test_peers_prints_a_table_and_json_with_every_field() -> None:
    adverts = [Advert("a", "n1", ("tone",), ("rules",), True, "1 model(s) healthy", 1, 8,
                      0.0012, 5, 0, 1.0, (), 99.0),
               Advert("b", "n2", (), (), False, "1 of 1 model(s) unhealthy: down", 0, 8, 0.0,
                      0, 2, 1.0, (("gpu", 1.0),), 100.0)]
    table = peerscmd.as_table(adverts, now=100.5)
    assert table.splitlines()[1].split() == ["a", "tone", "rules", "ok", "1/8", "1.2", "ms",
                                             "5", "(0", "failed)", "1.5", "s", "ago"]
    assert "UNHEALTHY" in table.splitlines()[2] and "b: 1 of 1 model(s) unhealthy" in table
    found = json.loads(json.dumps({"arbiters": [peerscmd.as_dict(a, 100.5) for a in adverts]}))
    assert [a["name"] for a in found["arbiters"]] == ["a", "b"]
    assert found["arbiters"][1] == {
        "name": "b", "node": "n2", "serves": [], "models": [], "healthy": False,
        "health": "1 of 1 model(s) unhealthy: down", "in_flight": 0, "max_concurrency": 8,
        "latency_ms": 0.0, "served": 0, "failed": 2, "resources": {"gpu": 1.0},
        "heartbeat_s": 1.0, "seen_s_ago": 0.5}
    assert "no arbiters" in peerscmd.as_table([], 0.0)


def test_the_commands_exit_2_for_bad_input_and_1_for_no_fleet() -> None:
    bad = delegation("serve", "--arbiter", "two words")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "delegation: --arbiter 'two words': a name is letters, digits, '_', '.', '-'"]
    missing = delegation("peers")
    assert missing.returncode == 2 and "peers needs --cluster ADDR" in missing.stderr
    nobody = delegation("peers", "--cluster", f"127.0.0.1:{free_port()}", "--json")
    assert nobody.returncode == 1 and nobody.stdout == ""
    assert nobody.stderr.strip().startswith("delegation: peers: cluster 127.0.0.1:")
    assert len(nobody.stderr.strip().splitlines()) == 1
