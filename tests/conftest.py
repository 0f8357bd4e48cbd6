"""Session-wide test policy.

With RTFS_REQUIRE_ALL_TESTS=1 (set by scripts/test, so always in CI) a skipped test fails
the session: nothing may be skipped for lack of something the install step could provide.
"""

from __future__ import annotations

import os
import tempfile

import pytest

# Every process the tests start keeps its state (plans, outcomes, generated keys, the default
# L4 store) in a directory of this session, never in the user's ~/.local/state.
_STATE_HOME = tempfile.mkdtemp(prefix="rtfs-test-state-")
os.environ["XDG_STATE_HOME"] = _STATE_HOME

_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("RTFS_REQUIRE_ALL_TESTS") == "1" and _skipped:
        print(f"\n{len(_skipped)} test(s) skipped, which RTFS_REQUIRE_ALL_TESTS forbids:")
        for nodeid in _skipped:
            print(f"  {nodeid}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
