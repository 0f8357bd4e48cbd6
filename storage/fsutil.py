"""File-system helpers shared by every package of the project that writes files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(
    path: str | os.PathLike[str], data: bytes, *, fsync: bool = True, make_parents: bool = True
) -> None:
    """Replace `path` with `data` atomically: readers see the old file or the new one, never
    a partial one.

    The bytes go to a temporary file in the same directory (so the rename stays on one file
    system), which is then renamed over `path`. Several writers may race: the last rename wins.

    Args:
        path: the file to write.
        data: its new contents.
        fsync: flush the file, and after the rename its directory, to disk, so the new contents
            survive a crash (costs a few milliseconds on a real disk).
        make_parents: create missing parent directories first.

    Raises:
        OSError: the directory cannot be created or written; no temporary file is left behind.
    """
    target = Path(path)
    if make_parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if fsync:
        _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    """Persist a rename: the directory entry lives in the directory, not in the file."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # platforms that cannot open a directory (Windows) persist renames themselves
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the file itself is on disk
    finally:
        os.close(fd)
