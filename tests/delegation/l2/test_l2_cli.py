"""`delegation l2 calibrate|eval|status` as a user runs them (subprocesses, real model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from delegation.l2.book import BOOK_FILE, CalibrationBook
from delegation.l2.labelled import fow_cache_pairs


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "delegation", "l2", *args],
                          check=False, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 positive and 40 negative fow-cache pairs, as a pairs file."""
    rows = [pair for _, pair in fow_cache_pairs()]
    chosen = [p for p in rows if p.same][::7][:40] + [p for p in rows if not p.same][::7][:40]
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    path.write_text("".join(json.dumps({"a": p.a, "b": p.b, "same": p.same}) + "\n"
                            for p in chosen))
    return path


def test_calibrate_then_eval_agree(pairs_file: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    done = run("calibrate", str(pairs_file), "--namespace", "support", "--target", "0.05",
               "--state-dir", str(state))
    assert done.returncode == 0, done.stderr
    assert "namespace support: threshold 0." in done.stdout and "upper bound" in done.stdout
    calibration = CalibrationBook.in_state_dir(state, defaults={}).get("support")
    assert calibration is not None and calibration.negatives == 40
    assert calibration.target_rate == 0.05
    result = run("eval", str(pairs_file), "--namespace", "support", "--json",
                 "--state-dir", str(state))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    counts = json.loads(lines[0])
    assert list(counts) == ["pairs", "false_hits", "negatives", "hits", "positives"]
    assert counts == {"pairs": 80, "false_hits": calibration.false_hits, "negatives": 40,
                      "hits": calibration.true_hits, "positives": 40}
    status = run("status", "--namespace", "support", "--state-dir", str(state))
    assert status.returncode == 0 and "namespace calibration" in status.stdout
    assert "semantic hits: on" in status.stdout


def test_eval_without_calibration_uses_the_shipped_default(pairs_file: Path,
                                                          tmp_path: Path) -> None:
    result = run("eval", str(pairs_file), "--namespace", "fresh", "--state-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "namespace fresh: default calibration, threshold 0.9" in result.stdout
    assert "false hits" in result.stdout and "recall" in result.stdout


def test_state_dir_defaults_to_xdg_then_home(pairs_file: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "XDG_STATE_HOME"}
    xdg = run("calibrate", str(pairs_file), "--target", "0.05",
              env={**env, "XDG_STATE_HOME": str(tmp_path / "xdg")})
    assert xdg.returncode == 0, xdg.stderr
    assert (tmp_path / "xdg" / "rtfs-delegation" / BOOK_FILE).is_file()
    home = run("calibrate", str(pairs_file), "--target", "0.05",
               env={**env, "HOME": str(tmp_path / "home")})
    assert home.returncode == 0, home.stderr
    assert (tmp_path / "home" / ".local" / "state" / "rtfs-delegation" / BOOK_FILE).is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["--target", "1.5"], "--target 1.5"),
    (["--target", "abc"], "is not a number"),
    (["--namespace", "no spaces"], "--namespace"),
    (["--target", "0.001"], "too few"),
    (["--model", "nope"], "--model 'nope'"),
])
def test_bad_arguments_exit_2_with_one_line(pairs_file: Path, tmp_path: Path, args: list[str],
                                            message: str) -> None:
    result = run("calibrate", str(pairs_file), "--state-dir", str(tmp_path), *args)
    assert result.returncode == 2
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("delegation: ") and message in result.stderr


@pytest.mark.parametrize("command", ["calibrate", "eval"])
def test_bad_pairs_file_names_file_and_line(tmp_path: Path, command: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": "x y", "b": "x z", "same": false}\n{"a": "x y", "same": true}\n')
    result = run(command, str(bad), "--state-dir", str(tmp_path / "s"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"delegation: {bad}:2: missing key 'b'\n"
    missing = run(command, str(tmp_path / "nope.jsonl"), "--state-dir", str(tmp_path / "s"))
    assert missing.returncode == 2 and "nope.jsonl: cannot read" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_corrupt_state_file_exits_2(pairs_file: Path, tmp_path: Path) -> None:
    (tmp_path / BOOK_FILE).write_text("garbage")
    result = run("eval", str(pairs_file), "--state-dir", str(tmp_path))
    assert result.returncode == 2 and BOOK_FILE in result.stderr
    assert len(result.stderr.splitlines()) == 1
