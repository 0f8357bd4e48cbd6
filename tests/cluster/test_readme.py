"""The README's "The fleet on one machine" commands, run as written (in a copy of the
examples, so the checkout stays clean): node b starts warm from node a."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.cluster.conftest import require_loopback_listeners

ROOT = Path(__file__).resolve().parents[2]


def fleet_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## The fleet on one machine", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the README's fleet section has no sh block"
    # The install line is what this test environment already did.
    return [line for line in block.group(1).replace("\\\n", "").splitlines()
            if line.strip() and not line.startswith("pip install")]


def test_the_readme_fleet_commands_work_as_written(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples" / "fleet", tmp_path / "examples" / "fleet",
                    ignore=shutil.ignore_patterns("run"))
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "python").symlink_to(sys.executable)  # `python` as the README says it
    env = dict(os.environ, PATH=f"{shims}{os.pathsep}{os.environ['PATH']}")
    script = "set -e\n" + "\n".join(fleet_commands()) + "\n"
    shell = subprocess.Popen(["bash", "-c", script], cwd=tmp_path, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ready = tmp_path / "examples" / "fleet" / "run" / "serve.out"
    deadline = time.monotonic() + 180
    while shell.poll() is None and time.monotonic() < deadline:
        if ready.exists() and "ready: " in ready.read_text():
            require_loopback_listeners(shell.pid, "the README's delegation serve")
            break
        time.sleep(0.1)
    stdout, stderr = shell.communicate(timeout=600)
    done = subprocess.CompletedProcess(shell.args, shell.returncode, stdout, stderr)
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
