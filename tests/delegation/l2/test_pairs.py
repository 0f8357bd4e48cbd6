"""Pairs files: valid lines, and one clear error naming file and line for a bad one."""

from __future__ import annotations

from pathlib import Path

import pytest

from delegation.l2.errors import PairsFileError
from delegation.l2.pairs import Pair, load_pairs


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_pairs_with_optional_fn_and_extra_keys(tmp_path: Path) -> None:
    path = write(tmp_path, '{"a": "x y", "b": "x  y", "same": true}\n\n'
                           '{"a": "p", "b": "q", "same": false, "fn": "ask", "id": 7}\n')
    assert load_pairs(path) == [Pair("x y", "x  y", True), Pair("p", "q", False, "ask")]


@pytest.mark.parametrize(("text", "line", "message"), [
    ('{"a": "x", "b": "y", "same": true}\nnot json\n', 2, "not JSON"),
    ('["a", "b"]\n', 1, "expected an object"),
    ('{"a": "x", "same": true}\n', 1, "missing key 'b'"),
    ('{"a": "x", "b": 3, "same": true}\n', 1, "'b' must be a string"),
    ('{"a": "x", "b": "y", "same": "yes"}\n', 1, "'same' must be true or false"),
    ('\n\n{"a": "x", "b": "y", "same": 1}\n', 3, "'same' must be true or false"),
    ('{"a": "x", "b": "y", "same": true, "fn": ""}\n', 1, "'fn' must be a non-empty string"),
])
def test_bad_lines_name_file_and_line(tmp_path: Path, text: str, line: int,
                                      message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PairsFileError) as info:
        load_pairs(path)
    assert info.value.line == line
    assert str(info.value).startswith(f"{path}:{line}: ") and message in str(info.value)


def test_unreadable_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(PairsFileError, match="cannot read"):
        load_pairs(tmp_path / "missing.jsonl")
    with pytest.raises(PairsFileError, match="no pairs"):
        load_pairs(write(tmp_path, "\n \n"))
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"a": "caf\xe9"}')
    with pytest.raises(PairsFileError, match="not UTF-8"):
        load_pairs(bad)
