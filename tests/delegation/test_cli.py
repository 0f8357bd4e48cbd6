"""The `delegation` command through a real subprocess, on the shipped demo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def delegation(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["XDG_STATE_HOME"] = str(cwd / ".state")  # each test's runs share their own state
    return subprocess.run([sys.executable, "-m", "delegation", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


@pytest.fixture
def demo(tmp_path):
    """A copy of examples/; its runs keep their state (L4, plans) in the copy's .state/."""
    target = tmp_path / "examples"
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns(".rtfs-state"))
    return target


def rows(output: str) -> dict[str, list[str]]:
    table = output.split("\n\n")[2].splitlines()[2:]
    return {line.split()[1]: line.split() for line in table}


def test_demo_explains_every_call_and_exits_0(demo):
    result = delegation("run", "demo.rtfs", "--explain", cwd=demo)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("{:sum 6 :sentiment \"positive\" :summary ")
    table = rows(result.stdout)
    assert table["+"][2:4] == ["LocalPure", "static-exact"]
    assert table["sentiment"][2:4] == ["LocalModel(sentiment-rules)", "static-exact"]
    assert table["summarize"][2:4] == ["LocalModel(summarizer)", "fallback"]
    assert table["generate-code"][2:4] == ["-", "security"] and "refused" in table["generate-code"]
    assert table["translate"][2:4] == ["-", "unavailable"]
    assert table["tone"][2:4] == ["LocalModel(sentiment-rules)", "capability"]
    assert "OPENAI_API_KEY not set" in result.stdout
    assert "model file models/codegen not found" in result.stdout
    assert "TRANSLATE_API_KEY not set" in result.stdout
    assert "word-count: compiled+published" in result.stdout


def test_second_run_starts_warm(demo):
    assert delegation("run", "demo.rtfs", cwd=demo).returncode == 0
    result = delegation("run", "demo.rtfs", "--explain", cwd=demo)
    assert result.returncode == 0
    tone = rows(result.stdout)["tone"]  # columns: # call target layer latency ms L1 outcome
    assert (tone[3], tone[6]) == ("l1-cache", "hit")
    assert "word-count: l4" in result.stdout
    assert "1 restored at start" in result.stdout


def test_json_output(demo):
    result = delegation("run", "demo.rtfs", "--json", "--config", "delegation.toml", cwd=demo)
    document = json.loads(result.stdout)
    assert document["error"] is None and document["value"].startswith("{:sum 6")
    outcomes = {c["symbol"]: c["outcome"] for c in document["calls"]}
    assert outcomes == {"+": "ok", "sentiment": "ok", "summarize": "ok",
                        "generate-code": "refused", "translate": "unavailable", "tone": "ok"}


def test_without_any_config_the_builtin_default_runs_offline(tmp_path):
    (tmp_path / "plan.rtfs").write_text('(sentiment "great")', encoding="utf-8")
    result = delegation("run", "plan.rtfs", "--explain", cwd=tmp_path)
    assert result.returncode == 0 and "built-in default" in result.stdout


def test_config_check_names_the_key_and_line(tmp_path):
    (tmp_path / "bad.toml").write_text(
        '[delegation]\ncache_ttl = 60\n\n[delegation.static_routes]\n"x" = "remote-nowhere"\n',
        encoding="utf-8")
    result = delegation("config", "check", "bad.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert "bad.toml:5" in result.stderr and "static_routes" in result.stderr
    assert "Traceback" not in result.stderr
    good = delegation("config", "check", str(EXAMPLES / "delegation.toml"), cwd=tmp_path)
    assert good.returncode == 0 and "route 'sentiment'" in good.stdout


def test_decide_prints_target_layer_and_reason(demo):
    result = delegation("decide", "sentiment", "generate-code", "ai-chat",
                        "--config", "delegation.toml", cwd=demo)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[1].startswith("sentiment: LocalModel(sentiment-rules) [static-exact]")
    assert lines[2].startswith("generate-code: nowhere [security] refused")
    assert lines[3].startswith("ai-chat: nowhere [unavailable]")


def test_errors_are_one_line(tmp_path):
    missing = delegation("run", "nope.rtfs", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.startswith("delegation: cannot read")
    (tmp_path / "bad.rtfs").write_text("(+ 1\n  (undefined-fn))", encoding="utf-8")
    failing = delegation("run", "bad.rtfs", cwd=tmp_path)
    assert failing.returncode == 1
    assert failing.stderr == (
        "delegation: bad.rtfs: UnboundSymbol: unbound symbol: undefined-fn (2:3)\n")


def test_json_output_is_one_document_even_when_the_plan_prints(tmp_path):
    plan = tmp_path / "p.rtfs"
    plan.write_text('(println "hello from the plan")\n(defn f [x] (* 2 x))\n(f 21)\n')
    result = delegation("run", "p.rtfs", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # exactly one document: nothing else on stdout
    assert document["value"] == "42"
    assert "hello from the plan" in result.stderr


def test_read_only_commands_write_nothing(tmp_path):
    (tmp_path / "delegation.toml").write_text(
        '[delegation.static_routes]\n"+" = "local-pure"\n')
    before = sorted(p for p in tmp_path.rglob("*"))
    for args in (("decide", "+", "summarize", "--config", "delegation.toml"),
                 ("config", "check", "delegation.toml")):
        result = delegation(*args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert sorted(p for p in tmp_path.rglob("*")) == before  # .state/ was never created


@pytest.mark.parametrize("text, words", [
    ("[delegation]\na = " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
    ("[delegation.local_models.s]\nkind = 'sentiment-rules'\nrules = 'none.rules'\n",
     "none.rules"),
    ("[delegation.l4]\ntrusted_keys = ['k.pub']\n", "delegation.l4.trusted_keys[0]"),
    ("[delegation.remote_providers.p]\nkind = 'openai-chat'\nbase_url = 'http://x'\n"
     "model = 'm'\ntimeout_s = 1e308\n", "timeout_s: must be <="),
])
def test_config_check_catches_what_run_would_reject(tmp_path, text, words):
    (tmp_path / "k.pub").write_bytes(b"\xff\xfe\x00 binary")
    (tmp_path / "bad.toml").write_text(text)
    result = delegation("config", "check", "bad.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert words in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
