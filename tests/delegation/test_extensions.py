"""Extensions: provider kinds, config tables and subcommands registered by another package."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import EntryPoint

import pytest

from delegation import cli
from delegation.config import parse_config
from delegation.errors import ConfigError
from delegation.extensions import (
    ENTRY_POINT_GROUP,
    Command,
    ConfigSection,
    Extensions,
    ProviderKindSpec,
    load,
)
from delegation.providers import build_registry
from delegation.providers.base import BaseProvider, ModelResult
from delegation.schema import Option, OptionType
from delegation.targets import RemoteModel


class EchoProvider(BaseProvider):
    """A provider of the registered kind: answers with what its config said."""

    def __init__(self, cfg: object, ctx: object) -> None:
        super().__init__(cfg.id, cost_per_call=cfg.cost_per_call,  # type: ignore[attr-defined]
                         capabilities=cfg.capabilities)  # type: ignore[attr-defined]
        self.cfg, self.ctx = cfg, ctx

    def infer(self, prompt: str, **params: object) -> ModelResult:
        text = self._check(prompt, params)
        return self._result(f"{self.cfg.options['arbiter']}:{text}", None, 0.0)  # type: ignore[attr-defined]


def echo_extension() -> Extensions:
    ext = Extensions()
    ext.add_provider_kind(ProviderKindSpec(
        "echo-peer",
        {"arbiter": Option(OptionType.STRING, required=True),
         "hops": Option(OptionType.INTEGER, default=3, minimum=1, maximum=8)},
        EchoProvider))
    ext.add_config_section(ConfigSection(
        "cluster", {"address": Option(OptionType.STRING, default="auto"),
                    "shards": Option(OptionType.INTEGER, default=4, minimum=1)}))
    return ext


CONFIG = """
[delegation.remote_providers.peer]
kind = "echo-peer"
arbiter = "gpu"
capabilities = ["embed"]

[delegation.cluster]
shards = 8
"""


def test_a_registered_kind_and_table_are_accepted_and_built() -> None:
    config = parse_config(CONFIG, extensions=echo_extension())
    peer = config.remote_providers["peer"]
    assert peer.kind == "echo-peer" and dict(peer.options) == {"arbiter": "gpu", "hops": 3}
    assert dict(config.sections["cluster"]) == {"address": "auto", "shards": 8}
    registry = build_registry(config, {}, extensions=echo_extension())
    assert registry.infer(RemoteModel("peer"), "hi").text == "gpu:hi"
    assert registry.capabilities.targets_for("embed") == (RemoteModel("peer"),)


@pytest.mark.parametrize("text, key, words", [
    (CONFIG.replace('arbiter = "gpu"', ""), "remote_providers.peer", "missing required key"),
    (CONFIG + "\n[delegation.remote_providers.peer2]\nkind = 'echo-peer'\narbiter = 'a'\n"
     "hops = 99\n", "remote_providers.peer2.hops", "<= 8"),
    (CONFIG.replace("shards = 8", "shards = 8\nshardz = 2"), "cluster", "shardz"),
    (CONFIG.replace("echo-peer", "no-such-kind"), "peer.kind", "unknown kind"),
])
def test_bad_extension_config_names_key_and_line(text: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="f.toml", extensions=echo_extension())
    message = str(info.value)
    assert re.match(r"f\.toml:\d+: ", message), message  # file and line first
    assert key in message and words in message


def test_without_the_extension_its_kind_and_table_are_unknown() -> None:
    with pytest.raises(ConfigError, match="unknown kind 'echo-peer'"):
        parse_config(CONFIG.split("[delegation.cluster]")[0], extensions=Extensions())
    with pytest.raises(ConfigError, match="delegation.cluster: unknown key"):
        parse_config("[delegation.cluster]\nshards = 2\n", extensions=Extensions())


def test_loading_runs_each_entry_point_and_records_a_broken_one() -> None:
    points = [
        EntryPoint("good", f"{__name__}:register_good", ENTRY_POINT_GROUP),
        EntryPoint("broken", f"{__name__}:no_such_function", ENTRY_POINT_GROUP),
    ]
    ext = load(points)
    assert "hello" in ext.commands
    assert len(ext.problems) == 1 and "'broken'" in ext.problems[0]


def register_good(ext: Extensions) -> None:
    ext.add_command(Command("hello", "say hello", lambda p: p.add_argument("who"),
                            lambda args: 7 if args.who == "ray" else 0))


def test_an_extension_command_becomes_a_subcommand(monkeypatch: pytest.MonkeyPatch) -> None:
    ext = Extensions()
    register_good(ext)
    monkeypatch.setattr(cli, "discover", lambda: ext)
    assert cli.main(["hello", "ray"]) == 7


def test_registering_a_name_twice_is_an_error() -> None:
    ext = Extensions()
    register_good(ext)
    with pytest.raises(ValueError, match="twice"):
        register_good(ext)


def test_run_with_cluster_uses_the_shared_state_and_reports_after_the_run(
        monkeypatch: pytest.MonkeyPatch, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from delegation.extensions import SharedState
    from delegation.l1 import L1PlanCache

    events: list[object] = []
    plans = L1PlanCache()

    def connect(config, address, *, environ):  # type: ignore[no-untyped-def]
        events.append(("connect", address))
        return SharedState(plans=plans, warnings=["fleet says hi"],
                           report=lambda runtime: events.append(("report", runtime.plans)),
                           close=lambda: events.append(("close", None)))

    ext = Extensions()
    ext.set_cluster_connector(connect)
    monkeypatch.setattr(cli, "discover", lambda: ext)
    program = tmp_path / "p.rtfs"
    program.write_text("(+ 1 2)")
    assert cli.main(["run", str(program), "--cluster", "127.0.0.1:1",
                     "--state-dir", str(tmp_path / "state")]) == 0
    assert events == [("connect", "127.0.0.1:1"), ("report", plans), ("close", None)]
    out, err = capsys.readouterr()
    assert out.strip() == "3" and "warning: fleet says hi" in err


ENTRY_SCRIPT = """
import atexit, sys, threading, time
from delegation import cli
from delegation.extensions import Extensions, SharedState

mode = sys.argv[1]
cli.CLOSE_TIMEOUT_S = 1.0

def close():
    if mode == "hangs":
        threading.Event().wait()
    return mode != "cannot-stop"

def connect(config, address, *, environ):
    # like Ray's client of a dead head: its exit hook would wait with no bound
    atexit.register(lambda: (print("exit hook ran", file=sys.stderr, flush=True),
                             mode != "stops" and time.sleep(600)))
    return SharedState(close=close)

ext = Extensions()
ext.set_cluster_connector(connect)
cli.discover = lambda: ext
sys.argv = ["delegation", "run", sys.argv[2], "--cluster", "127.0.0.1:1", "--state-dir",
            sys.argv[3]]
cli.entry()
"""


@pytest.mark.parametrize("mode, why", [
    ("cannot-stop", "the fleet connection could not stop; exiting without it"),
    ("hangs", "the fleet connection did not close in 1 s; exiting without it"),
])
def test_a_run_whose_fleet_connection_cannot_stop_still_prints_and_exits(
        tmp_path, mode: str, why: str) -> None:  # type: ignore[no-untyped-def]
    program = tmp_path / "p.rtfs"
    program.write_text("(+ 1 2)")
    done = subprocess.run([sys.executable, "-c", ENTRY_SCRIPT, mode, str(program),
                           str(tmp_path / "state")], capture_output=True, text=True,
                          timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "3"), done.stderr
    assert why in done.stderr and "exit hook ran" not in done.stderr


def test_a_run_whose_fleet_connection_stops_exits_normally(tmp_path) -> None:  # type: ignore[no-untyped-def]
    program = tmp_path / "p.rtfs"
    program.write_text("(/ 1 0)")  # an error: exit 1, exit hooks run as usual
    done = subprocess.run([sys.executable, "-c", ENTRY_SCRIPT, "stops", str(program),
                           str(tmp_path / "state")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1 and "exit hook ran" in done.stderr, done.stderr
    assert "exiting without it" not in done.stderr
