"""command: health of absent runners, exit status, timeouts that kill the runner's group."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from delegation.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from delegation.providers import CommandProvider


def runner(directory: Path, body: str, name: str = "runner", mode: int = 0o755) -> Path:
    path = directory / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(mode)
    return path


def test_absent_model_file_is_unhealthy_and_never_started(tmp_path: Path) -> None:
    provider = CommandProvider(
        "codegen", [str(tmp_path / "models" / "codegen")], display="models/codegen"
    )
    health = provider.health()
    assert not health.ok and health.reason == "model file models/codegen not found"
    with pytest.raises(ProviderUnavailable, match="model file models/codegen not found"):
        provider.infer("def f():")


def test_non_executable_and_directory_runners(tmp_path: Path) -> None:
    plain = runner(tmp_path, "print(1)\n", mode=0o644)
    assert CommandProvider("c", [str(plain)]).health().reason.endswith("is not executable")
    (tmp_path / "dir").mkdir()
    assert CommandProvider("c", [str(tmp_path / "dir")]).health().reason.endswith("not a file")


def test_bare_names_are_looked_up_in_the_given_path(tmp_path: Path) -> None:
    runner(tmp_path, "import sys; print(sys.stdin.read()[::-1])\n", name="reverser")
    found = CommandProvider("r", ["reverser"], search_path=str(tmp_path))
    assert found.health().ok
    assert found.infer("abc").text == "cba"
    missing = CommandProvider("r", ["reverser"], search_path="/nonexistent")
    assert missing.health().reason == "command 'reverser' not found on PATH"
    with pytest.raises(ProviderUnavailable, match="not found on PATH"):
        missing.infer("abc")


def test_arguments_are_passed_to_the_runner(tmp_path: Path) -> None:
    echo = runner(tmp_path, "import sys; print(' '.join(sys.argv[1:]))\n")
    assert CommandProvider("e", [str(echo), "--temp", "0.2"]).infer("").text == "--temp 0.2"


def test_failing_runner_reports_exit_status_and_stderr(tmp_path: Path) -> None:
    failing = runner(tmp_path, "import sys; sys.stderr.write('weights corrupt'); sys.exit(3)\n")
    with pytest.raises(ProviderError) as info:
        CommandProvider("c", [str(failing)], display="models/c").infer("x")
    assert info.value.status == 3 and info.value.body == "weights corrupt"
    assert "models/c exited with status 3" in str(info.value)


def test_timeout_kills_the_runner_and_what_it_started(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    slow = runner(
        tmp_path,
        f"""
import os, subprocess, sys, time
child = subprocess.Popen(["sleep", "60"])
open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
time.sleep(60)
""",
    )
    provider = CommandProvider("slow", [str(slow)], timeout_s=1.0, env={"PATH": os.defpath})
    with pytest.raises(ProviderTimeout, match="did not answer within 1 s"):
        provider.infer("x")
    for pid in map(int, pids.read_text().split()):
        assert not _alive(pid), f"process {pid} survived the timeout"


def _alive(pid: int) -> bool:
    """True if `pid` still runs (zombies, waiting for their parent, count as gone)."""
    for _ in range(50):  # the kernel may take a moment to reparent and reap a child
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state == "Z":
            return False
        time.sleep(0.1)
    return True


def test_runner_gets_only_the_given_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTFS_TEST_SENTINEL", "leaked")
    dump = runner(tmp_path, "import json, os; print(json.dumps(dict(os.environ)))\n")
    seen = json.loads(CommandProvider("d", [str(dump)], env={"A": "1"}).infer("").text)
    assert seen["A"] == "1" and "RTFS_TEST_SENTINEL" not in seen


def test_an_answer_is_not_held_back_by_a_child_that_keeps_the_pipes(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    leaky = runner(tmp_path, f"""
import os, subprocess, sys
same_group = subprocess.Popen(["sleep", "60"])  # inherits stdout and stderr
escaped = subprocess.Popen(["sleep", "60"], start_new_session=True)  # its own session
open({str(pids)!r}, "w").write(f"{{same_group.pid}} {{escaped.pid}}")
print("the answer")
""")
    provider = CommandProvider("leaky", [str(leaky)], timeout_s=30, env={"PATH": os.defpath})
    try:
        # before: communicate() waited for the children to close the pipes, i.e. the timeout
        assert provider.infer("x").text == "the answer"
        same_group, escaped = map(int, pids.read_text().split())
        assert not _alive(same_group), "a child in the runner's group outlived the call"
    finally:
        for pid in map(int, pids.read_text().split()):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


def test_output_is_bounded_and_the_runner_killed(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    flood = runner(tmp_path, f"""
import os, sys
open({str(pids)!r}, "w").write(str(os.getpid()))
block = b"x" * 65536
while True:
    sys.stdout.buffer.write(block)
""")
    provider = CommandProvider("flood", [str(flood)], timeout_s=30, max_output_bytes=1 << 20)
    with pytest.raises(ProviderError, match="wrote more than 1048576 bytes"):
        provider.infer("x")
    assert not _alive(int(pids.read_text()))


def test_a_large_prompt_and_answer_pass_through_without_deadlock(tmp_path: Path) -> None:
    echo = runner(tmp_path, "import sys; sys.stdout.write(sys.stdin.read())\n")
    prompt = "word " * 400_000  # 2 MB: more than a pipe holds, both ways
    assert CommandProvider("echo", [str(echo)]).infer(prompt).text == prompt.rstrip("\n")
