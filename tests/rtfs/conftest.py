from __future__ import annotations

import os
from pathlib import Path

import pytest

from rtfs.compiler import compile_program
from rtfs.printer import to_readable
from rtfs.reader import read
from rtfs.vm import VM

REPO = Path(__file__).resolve().parents[2]


def corpus_dir() -> Path:
    """The external conformance corpus: $RTFS_CONFORMANCE_DIR, or ../shared beside the repo."""
    return Path(os.environ.get("RTFS_CONFORMANCE_DIR", REPO.parent / "shared/conformance/rtfs"))


@pytest.fixture(scope="session")
def corpus() -> Path:
    path = corpus_dir()
    if not any(path.glob("*.rtfs")):
        pytest.skip(f"RTFS conformance corpus not found at {path} (set RTFS_CONFORMANCE_DIR)")
    return path


def evaluate(text: str, vm: VM | None = None):
    vm = vm or VM()
    return vm.run(compile_program(read(text), resolve_source=vm.source_hash_of))


def show(text: str, vm: VM | None = None) -> str:
    return to_readable(evaluate(text, vm))
