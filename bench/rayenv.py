"""The environment a Ray benchmark sets before it imports Ray: its own session directory and
token (token authentication stays on), no usage stats, no auto-connect, loopback only.

    from rayenv import RAY_HOME  # first: Ray reads this environment when it is imported
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project, run as a script

RAY_HOME = Path(tempfile.mkdtemp(prefix="rtfs-bench-ray-"))  # Ray's session files, the token


def _environment(home: Path) -> None:
    os.environ.setdefault("RAY_TMPDIR", str(home))
    if "RAY_AUTH_TOKEN" not in os.environ and "RAY_AUTH_TOKEN_PATH" not in os.environ:
        (home / "auth_token").write_text(secrets.token_hex(32))
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(home / "auth_token")
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only


_environment(RAY_HOME)
