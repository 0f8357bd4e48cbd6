"""`delegation serve` and `delegation run` as subprocesses, the way users and checkers run
them (output to files, process groups, bounded waits)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.cluster.conftest import require_loopback_listeners

READY_TIMEOUT_S = 120.0


def delegation(*args: str, env: dict[str, str] | None = None, timeout_s: float = 120.0,
               cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `delegation ARGS...` to completion."""
    return subprocess.run([sys.executable, "-m", "delegation", *args], capture_output=True,
                          text=True, env=env, timeout=timeout_s, cwd=cwd, check=False)


class ServeProcess:
    """`delegation serve ARGS...` in its own process group, output in files under `dir`."""

    def __init__(self, directory: Path, *args: str, env: dict[str, str] | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.out_path, self.err_path = directory / "serve.out", directory / "serve.err"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "delegation", "serve", *args], stdout=out, stderr=err,
                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self.address = ""

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def errors(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.output().splitlines():
                if line.startswith("ready: "):
                    self.address = line.removeprefix("ready: ").strip()
                    require_loopback_listeners(self.proc.pid, "delegation serve")
                    return self.address
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"serve was not ready: rc={self.proc.returncode}\n"
                             f"stdout: {self.output()}\nstderr: {self.errors()[-3000:]}")

    def metrics_url(self) -> str:
        for line in self.errors().splitlines():
            if "metrics on " in line:
                return line.split("metrics on ", 1)[1].strip()
        raise AssertionError(f"serve printed no metrics address: {self.errors()[-2000:]}")

    def stop(self, signum: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        """Send `signum` to serve itself; its exit status within `timeout_s`."""
        self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"serve did not stop within {timeout_s} s") from None

    def kill(self) -> None:
        """SIGKILL serve's whole process group (the head and everything it started)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(30)
