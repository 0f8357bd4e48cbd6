"""`command`: a local model runner executable, prompt on stdin, answer on stdout.

The runner is started once per call in its own process group; when it answers, times out or
writes too much, the group is killed, so nothing it started outlives the call and a child
that keeps the pipes open never holds the call past its timeout. Output is bounded.
A missing or non-executable runner makes the provider unhealthy with
the reason ("model file models/codegen not found"); `infer` then raises
`ProviderUnavailable` with the same reason and starts nothing.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from delegation.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from delegation.providers.base import BaseProvider, Health, ModelResult, effective_timeout

STDERR_EXCERPT_CHARS = 300
DEFAULT_MAX_OUTPUT_BYTES = 16 << 20
EXIT_GRACE_S = 0.2  # after the runner exits, how long its output may still arrive
SELECT_STEP_S = 0.05
READ_CHUNK = 1 << 16


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
        max_output_bytes: more output than this (stdout and stderr together) is an error
            and the runner is killed.
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
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    ) -> None:
        super().__init__(id, cost_per_call=cost_per_call, capabilities=capabilities, timer=timer)
        if not command or not command[0]:
            raise ValueError("command must name an executable")
        self.command = tuple(command)
        self.display = display or command[0]
        self.timeout_s = timeout_s
        self.max_output_bytes = max_output_bytes
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
            out, err = _exchange(proc, data, time.monotonic() + effective_timeout(self.timeout_s),
                                 self.max_output_bytes)
        except TimeoutError:
            raise ProviderTimeout(
                self.id, f"{self.display} did not answer within {self.timeout_s:g} s"
            ) from None
        except OverflowError:
            raise ProviderError(
                self.id, f"{self.display} wrote more than {self.max_output_bytes} bytes"
            ) from None
        finally:
            _end_group(proc)  # the runner's leftover children die with it
        if proc.returncode != 0:
            excerpt = err.decode("utf-8", errors="replace").strip()[-STDERR_EXCERPT_CHARS:]
            raise ProviderError(
                self.id,
                f"{self.display} exited with status {proc.returncode}",
                proc.returncode,
                excerpt,
            )
        return out


def _exchange(proc: subprocess.Popen[bytes], data: bytes, deadline: float,
              max_bytes: int) -> tuple[bytes, bytes]:
    """Write `data` to the runner and read its stdout and stderr until both close, or until
    a short grace after the runner exits (a child it left behind may hold the pipes open: its
    output is not waited for). Raises TimeoutError at `deadline`, OverflowError when the
    output passes `max_bytes`."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    buffers = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    pending = memoryview(data)
    with selectors.DefaultSelector() as selector:
        if pending:
            os.set_blocking(proc.stdin.fileno(), False)
            selector.register(proc.stdin.fileno(), selectors.EVENT_WRITE)
        else:
            proc.stdin.close()
        for fd in buffers:
            selector.register(fd, selectors.EVENT_READ)
        exited_at: float | None = None
        while selector.get_map():
            now = time.monotonic()
            if now >= deadline:
                raise TimeoutError
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > EXIT_GRACE_S:
                break
            for key, _ in selector.select(timeout=min(deadline - now, SELECT_STEP_S)):
                fd = key.fd
                if fd not in buffers:  # stdin
                    pending = _feed(fd, pending, selector, proc)
                    continue
                chunk = os.read(fd, READ_CHUNK)
                if not chunk:
                    selector.unregister(fd)
                    continue
                buffers[fd] += chunk
                if sum(map(len, buffers.values())) > max_bytes:
                    raise OverflowError
    proc.wait(timeout=max(0.0, deadline - time.monotonic()) + EXIT_GRACE_S)
    return bytes(buffers[proc.stdout.fileno()]), bytes(buffers[proc.stderr.fileno()])


def _feed(fd: int, pending: memoryview, selector: selectors.BaseSelector,
          proc: subprocess.Popen[bytes]) -> memoryview:
    """Write what the pipe takes; close stdin when all is written or the runner stopped
    reading."""
    try:
        written = os.write(fd, pending[:READ_CHUNK])
    except BlockingIOError:
        return pending
    except BrokenPipeError:
        written = len(pending)
    pending = pending[written:]
    if not pending:
        selector.unregister(fd)
        assert proc.stdin is not None
        proc.stdin.close()
    return pending


def _end_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the runner's process group (it was started in a new session), close our pipe
    ends and reap the runner, without ever waiting on a pipe a leftover child holds."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:
                pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # unkillable (uninterruptible sleep): do not hang
        pass
