"""`storage.atomic_write`: the one atomic file write of the project."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from storage import atomic_write


def test_writes_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "state.bin"
    atomic_write(target, b"first")
    assert target.read_bytes() == b"first"
    atomic_write(str(target), b"second", fsync=False)
    assert target.read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["state.bin"]


def test_makes_parents_unless_told_not_to(tmp_path: Path) -> None:
    atomic_write(tmp_path / "a" / "b" / "f", b"deep")
    assert (tmp_path / "a" / "b" / "f").read_bytes() == b"deep"
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "missing" / "f", b"x", make_parents=False)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_concurrent_writers_never_expose_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "f"
    payloads = [bytes([i]) * 200_000 for i in range(4)]
    atomic_write(target, payloads[0])
    seen: set[bytes] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.add(target.read_bytes())

    thread = threading.Thread(target=reader)
    thread.start()
    for _ in range(10):
        for data in payloads:
            atomic_write(target, data, fsync=False)
    stop.set()
    thread.join()
    assert seen <= set(payloads)
