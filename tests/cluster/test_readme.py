"""The README's "The fleet on one machine" commands, run as written (in a copy of the
examples, so the checkout stays clean): node b starts warm from node a."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from tests.cluster.conftest import readme_commands, readme_env, run_readme_script

ROOT = Path(__file__).resolve().parents[2]


def fleet_commands() -> list[str]:
    return readme_commands('## The fleet on one machine')


def test_the_readme_fleet_commands_work_as_written(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples" / "fleet", tmp_path / "examples" / "fleet",
                    ignore=shutil.ignore_patterns("run"))
    env = readme_env(tmp_path, dict(os.environ))
    done = run_readme_script(fleet_commands(), tmp_path, env,
                             tmp_path / "examples" / "fleet" / "run" / "serve.out",
                             "the README's delegation serve")
    assert done.returncode == 0, (done.stdout, done.stderr[-3000:])
    tone = [line.split() for line in done.stdout.splitlines() if re.match(r"\d+\s+tone\s", line)]
    assert len(tone) == 2
    assert "capability" in tone[0] and "stored" in tone[0]  # node a decided and stored it
    assert "l1-cache" in tone[1] and "hit" in tone[1]  # node b: node a's plan
    functions = [line.strip() for line in done.stdout.splitlines()
                 if line.strip().startswith("word-count:")]
    assert functions[0].startswith("word-count: compiled+published")
    assert functions[1].startswith("word-count: l4")  # node a's bytecode, signature checked
    assert re.search(r"^shard\s+entries\s+hits", done.stdout, re.MULTILINE)
