"""The `rtfs` command-line contract, through a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def rtfs(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rtfs", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_eval_expression():
    result = rtfs("eval", "-e", "(+ 1 2)")
    assert (result.returncode, result.stdout, result.stderr) == (0, "3\n", "")


def test_eval_each_prints_one_line_per_form(tmp_path):
    program = tmp_path / "p.rtfs"
    program.write_text(
        ')\n(+ 1 2)\n(println "to stderr")\n"two\nlines"\n(undefined-fn 1)\n'
        '(do (def x 5) x)\n(str "a" x)\n(let [y 1]\n', encoding="utf-8")
    result = rtfs("eval", "--each", str(program))
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "!error SyntaxError: unexpected closing ')' (1:1)",
        "3",
        "nil",
        '"two\\nlines"',
        "!error UnboundSymbol: unbound symbol: undefined-fn (6:1)",
        "5",
        '"a5"',
        "!error SyntaxError: unclosed '(': expected ')' before end of input (9:1)",
    ]
    assert result.stderr == "to stderr\n"


def test_eval_each_of_an_unreadable_file_exits_2(tmp_path):
    result = rtfs("eval", "--each", str(tmp_path / "missing.rtfs"))
    assert result.returncode == 2 and "cannot read" in result.stderr
    assert "Traceback" not in result.stderr


def test_compile_then_run(tmp_path):
    source = tmp_path / "prog.rtfs"
    source.write_text("(defn sq [x] (* x x))\n(map sq [1 2 3])\n", encoding="utf-8")
    out = tmp_path / "prog.rtfsc"
    assert rtfs("compile", str(source), "-o", str(out)).returncode == 0
    result = rtfs("run", str(out))
    assert (result.returncode, result.stdout) == (0, "[1 4 9]\n")


@pytest.mark.parametrize("payload", [b"not bytecode", b"", b"\x93\x01\xa9rtfs-code\x90"])
def test_run_refuses_malformed_bytecode_in_one_line(tmp_path, payload):
    bad = tmp_path / "bad.rtfsc"
    bad.write_bytes(payload)
    result = rtfs("run", str(bad))
    assert result.returncode == 1
    assert result.stderr.startswith(f"rtfs: {bad}: BytecodeError:")
    assert result.stderr.count("\n") == 1


def test_runtime_error_is_one_line(tmp_path):
    result = rtfs("eval", "-e", "(do\n (/ 1 0))")
    assert result.returncode == 1
    assert result.stderr == "rtfs: ArithmeticError: division by zero (2:2)\n"
    program = tmp_path / "p.rtfs"
    program.write_text("(+ 1\n  x)", encoding="utf-8")
    in_file = rtfs("eval", str(program))
    assert in_file.stderr == f"rtfs: {program}: UnboundSymbol: unbound symbol: x (2:3)\n"


def test_conformance_command(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "mini.rtfs").write_text(
        "(+ 1 2) ; Should return 3\n(* 2 2)\n;; Expected: 5\n(str 1)\n;; Expected: Some prose\n",
        encoding="utf-8")
    result = rtfs("conformance", str(corpus))
    assert result.stdout.splitlines()[0] == "mini.rtfs: 1 passed, 1 failed, 1 descriptive"
    assert result.stdout.splitlines()[-1] == "1 passed, 1 failed"
    known = tmp_path / "known.txt"
    known.write_text("mini.rtfs:2  the corpus is wrong here on purpose\n", encoding="utf-8")
    assert rtfs("conformance", str(corpus), "--known-failures", str(known)).returncode == 0
