"""The README's two-arbiter fleet ("Two arbiters: a call federates"), run as written in a copy
of the examples: node a's `faq` call is federated to arbiter b, and `peers` lists both."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from tests.cluster.conftest import readme_commands, readme_env, run_readme_script

ROOT = Path(__file__).resolve().parents[2]


def federation_commands() -> list[str]:
    return readme_commands('### Two arbiters: a call federates')


def test_the_readme_two_arbiter_fleet_works_as_written(tmp_path: Path) -> None:
    for example in ("federation", "models"):
        shutil.copytree(ROOT / "examples" / example, tmp_path / "examples" / example,
                        ignore=shutil.ignore_patterns("run"))
    env = readme_env(tmp_path, dict(os.environ))
    done = run_readme_script(federation_commands(), tmp_path, env,
                             tmp_path / "examples" / "federation" / "run" / "b.out",
                             "the README's two serves", start_s=240)
    stdout = done.stdout
    assert done.returncode == 0, (stdout, done.stderr[-3000:])
    peers = [line.split()[0] for line in stdout.splitlines()
             if re.match(r"[ab]\s+\S+\s+\S+\s+ok\s", line)]
    assert peers == ["a", "b"]
    assert re.search(r"^b\s+faq\s+faq\s+ok", stdout, re.MULTILINE)
    assert "Use 'Forgot password' on the sign-in page" in stdout  # b's model's answer
    faq = next(line.split() for line in stdout.splitlines() if re.match(r"\d+\s+faq\s", line))
    assert faq[2:4] == ["RemoteModel(peer:b)", "federation"]
    tone = next(line.split() for line in stdout.splitlines() if re.match(r"\d+\s+tone\s", line))
    assert tone[2:4] == ["LocalModel(sentiment-rules)", "capability"]
    assert "faq: nothing on this node provides faq; federated to arbiter b" in stdout
