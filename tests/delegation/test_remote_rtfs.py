"""The `remote-rtfs` provider kind without a server: its configuration keys (checked with key
and line), how it is built, what L2 does with it, and its answers as RTFS values. The provider
against a real endpoint is in `tests/cluster/test_http.py`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from delegation.config import parse_config
from delegation.convert import NIL, to_rtfs
from delegation.errors import ConfigError, ProviderInputError, ProviderUnavailable
from delegation.l2.serving import ModelResults
from delegation.learning import Learner
from delegation.providers.registry import build_registry
from delegation.providers.remote_rtfs import RemoteRTFSProvider
from delegation.targets import RemoteModel
from rtfs.reader import read
from rtfs.values import Keyword, Map, RList

PROVIDER = """
[delegation.remote_providers.gpu]
kind = "remote-rtfs"
endpoint = "http://127.0.0.1:9/"
auth_token_env = "GPU_TOKEN"
timeout_s = 5
"""


def test_the_kind_and_its_keys() -> None:
    config = parse_config(PROVIDER)
    gpu = config.remote_providers["gpu"]
    assert (gpu.kind, gpu.base_url, gpu.api_key_env, gpu.timeout_s) == (
        "remote-rtfs", "http://127.0.0.1:9", "GPU_TOKEN", 5.0)
    assert gpu.capabilities == ("remote-rtfs.execute",)  # its default
    registry = build_registry(config, {"GPU_TOKEN": "t0k"})
    provider = registry.get(RemoteModel("gpu"))
    assert isinstance(provider, RemoteRTFSProvider)
    assert provider.endpoint == "http://127.0.0.1:9" and provider.timeout_s == 5.0
    assert registry.capabilities.targets_for("remote-rtfs.execute") == (RemoteModel("gpu"),)


@pytest.mark.parametrize("line, key, message", [
    ("base_url = \"http://x\"", "delegation.remote_providers.gpu.base_url", "unknown key"),
    ("api_key_env = \"K\"", "delegation.remote_providers.gpu.api_key_env", "unknown key"),
    ("model = \"m\"", "delegation.remote_providers.gpu.model", "unknown key"),
])
def test_keys_of_other_kinds_are_refused_with_key_and_line(line: str, key: str,
                                                           message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(PROVIDER + line + "\n", source="d.toml")
    assert (info.value.key_path, info.value.line) == (key, 7)
    assert message in info.value.message


def test_a_bad_endpoint_and_a_missing_one_are_named() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(PROVIDER.replace("http://127.0.0.1:9/", "ftp://x"), source="d.toml")
    assert (info.value.key_path, info.value.line) == (
        "delegation.remote_providers.gpu.endpoint", 4)
    without = "\n".join(line for line in PROVIDER.splitlines()
                        if not line.startswith("endpoint"))
    with pytest.raises(ConfigError, match="endpoint"):
        parse_config(without)


def test_config_check_names_the_key_and_line(tmp_path: Path) -> None:
    path = tmp_path / "delegation.toml"
    path.write_text(PROVIDER + "tokenenv = \"X\"\n")
    done = subprocess.run([sys.executable, "-m", "delegation", "config", "check", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert "delegation.remote_providers.gpu.tokenenv" in done.stderr
    assert ":7:" in done.stderr


def test_the_token_is_a_secret_withheld_from_local_runners(tmp_path: Path) -> None:
    config = parse_config(PROVIDER + """
[delegation.local_models.env]
kind = "command"
command = ["env"]
""", base_dir=tmp_path)
    registry = build_registry(config, {"GPU_TOKEN": "t0k", "PATH": "/usr/bin:/bin"})
    answer = registry.infer(registry.targets()[-1], "")
    assert "GPU_TOKEN" not in answer.text and "PATH=" in answer.text


def test_without_a_token_it_is_unhealthy_and_sends_nothing() -> None:
    provider = RemoteRTFSProvider("gpu", endpoint="http://127.0.0.1:9", token_env="GPU_TOKEN")
    assert not provider.health().ok and "GPU_TOKEN not set" in provider.health().reason
    with pytest.raises(ProviderUnavailable, match="GPU_TOKEN not set"):
        provider.infer("(+ 1 2)")


@pytest.mark.parametrize("prompt, params, message", [
    ("(+ 1 2)", {"args": (1,)}, "args go with interface"),
    ("(+ 1 2)", {"interface": "ab", "blob": "cd"}, "either source or"),
    ("", {"interface": 3, "blob": "cd"}, "interface must be"),
    ("", {"interface": "ab", "blob": "cd", "args": "x"}, "args must be a vector"),
    ("(+ 1 2)", {"deadline_ms": 0}, "deadline_ms"),
])
def test_bad_requests_are_refused_before_sending(prompt: str, params: dict[str, object],
                                                 message: str) -> None:
    provider = RemoteRTFSProvider("gpu", endpoint="http://127.0.0.1:9", token="t")
    with pytest.raises(ProviderInputError, match=message):
        provider.infer(prompt, **params)


def test_l2_never_serves_or_stores_a_program_s_answer() -> None:
    config = parse_config(PROVIDER + "cost_per_call = 1.0\n")

    def no_cache() -> object:
        raise AssertionError("L2 must not be built for a remote-rtfs call")

    results = ModelResults(config, Learner(), no_cache)  # type: ignore[arg-type]
    assert results.consult(RemoteModel("gpu"), "remote-rtfs.execute", ("(+ 1 2)",),
                           False) is None


def test_rtfs_answers_stay_rtfs_values() -> None:
    [form] = read('{:a [1 (x y)] "s" #{:k}}')
    from rtfs.forms import form_to_value

    value = form_to_value(form)
    assert to_rtfs(value) is value
    assert to_rtfs(NIL) is None
    assert to_rtfs(RList([1])) == RList([1]) and type(to_rtfs(RList([1]))) is RList
    # plain provider answers still convert as before
    assert to_rtfs({"label": "x"}) == Map([(Keyword("label"), "x")])
