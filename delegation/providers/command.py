"""`command`: a local model runner executable, prompt on stdin, answer on stdout.

The runner is started once per call in its own process group, so a timeout kills it and
anything it started. A missing or non-executable runner makes the provider unhealthy with
the reason ("model file models/codegen not found"); `infer` then raises
`ProviderUnavailable` with the same reason and starts nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from delegation.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from delegation.providers.base import BaseProvider, Health, ModelResult

STDERR_EXCERPT_CHARS = 300


class CommandProvider(BaseProvider):
    """Local model runner. `infer(prompt)` -> text = value = the runner's stdout.

    Args:
        id: the model id.
        command: argv; the first item is a path (contains `/`) or a name looked up in
            `search_path`.
        display: how to name the runner in reasons (default: `command[0]`).
        timeout_s: how long one call may take before the runner is killed.
        search_path: the PATH to look bare names up in (resolved at the edge).
        env: the runner's environment (resolved at the edge); None gives it only PATH.
    """

    def __init__(
        self,
        id: str,
        command: Sequence[str],
        *,
        display: str | None = None,
        timeout_s: float = 30.0,
        cost_per_call: float = 0.0,
        capabilities: tuple[str, ...] = (),
        search_path: str | None = None,
        env: Mapping[str, str] | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(id, cost_per_call=cost_per_call, capabilities=capabilities, timer=timer)
        if not command or not command[0]:
            raise ValueError("command must name an executable")
        self.command = tuple(command)
        self.display = display or command[0]
        self.timeout_s = timeout_s
        self._search_path = search_path
        if env is None:
            env = {"PATH": search_path} if search_path else {}
        self._env = dict(env)

    def _executable(self) -> tuple[str | None, str]:
        """Return (path to run, "") or (None, why it cannot run)."""
        first = self.command[0]
        if "/" not in first:
            found = shutil.which(first, path=self._search_path or "")
            return (found, "") if found else (None, f"command {first!r} not found on PATH")
        path = Path(first)
        if not path.exists():
            return None, f"model file {self.display} not found"
        if not path.is_file():
            return None, f"model file {self.display} is not a file"
        if not os.access(path, os.X_OK):
            return None, f"model file {self.display} is not executable"
        return str(path), ""

    def health(self) -> Health:
        """Healthy when the runner exists and is executable (nothing is started)."""
        executable, reason = self._executable()
        if executable is None:
            return Health(False, reason)
        return Health(True, f"runner {self.display} is executable")

    def infer(self, prompt: str, **params: Any) -> ModelResult:
        """Run the runner with `prompt` on stdin; takes no parameters."""
        text = self._check(prompt, params)
        executable, reason = self._executable()
        if executable is None:
            raise ProviderUnavailable(self.id, reason)
        started = self._timer()
        stdout = self._run([executable, *self.command[1:]], text.encode("utf-8"))
        answer = stdout.decode("utf-8", errors="replace").rstrip("\n")
        return self._result(answer, answer, started)

    def _run(self, argv: list[str], data: bytes) -> bytes:
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self._env,
                start_new_session=True,
            )
        except OSError as e:
            raise ProviderUnavailable(
                self.id, f"cannot start {self.display}: {e.strerror or e}"
            ) from e
        try:
            out, err = proc.communicate(data, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise ProviderTimeout(
                self.id, f"{self.display} did not answer within {self.timeout_s:g} s"
            ) from None
        if proc.returncode != 0:
            excerpt = err.decode("utf-8", errors="replace").strip()[-STDERR_EXCERPT_CHARS:]
            raise ProviderError(
                self.id,
                f"{self.display} exited with status {proc.returncode}",
                proc.returncode,
                excerpt,
            )
        return out


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the runner's process group (it was started in a new session) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()
