"""The `rtfs` command-line contract, through a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def rtfs(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rtfs", *args], check=False,
                          capture_output=True, text=True, cwd=cwd, timeout=120)


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


def one_line_error(result: subprocess.CompletedProcess, status: int) -> str:
    """The single stderr line of a failed command (and never a traceback)."""
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("rtfs: "), result.stderr
    return result.stderr


def test_conformance_command(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "mini.rtfs").write_text(
        "(+ 1 2) ; Should return 3\n(* 2 2)\n;; Expected: 5\n(str 1)\n;; Expected: Some prose\n",
        encoding="utf-8")
    result = rtfs("conformance", str(corpus))
    assert result.stdout.splitlines()[0] == "mini.rtfs: 1 passed, 1 failed, 1 descriptive"
    assert result.stdout.splitlines()[-1] == "1 passed, 1 failed"
    assert result.returncode == 1  # an unexpected failure, with no known-failures list
    known = tmp_path / "known.txt"
    known.write_text("mini.rtfs:2  the corpus is wrong here on purpose\n", encoding="utf-8")
    assert rtfs("conformance", str(corpus), "--known-failures", str(known)).returncode == 0


def test_conformance_fails_on_a_stale_known_failure_and_passes_a_clean_corpus(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "ok.rtfs").write_text("(+ 1 2) ; Should return 3\n", encoding="utf-8")
    assert rtfs("conformance", str(corpus)).returncode == 0
    stale = tmp_path / "known.txt"
    stale.write_text("ok.rtfs:1  listed although it passes, so the list is out of date\n",
                     encoding="utf-8")
    result = rtfs("conformance", str(corpus), "--known-failures", str(stale))
    assert result.returncode == 1 and "remove it" in result.stdout


@pytest.mark.parametrize("files", [{}, {"notes.txt": "(+ 1 2) ; Should return 3\n"}])
def test_conformance_refuses_a_directory_without_programs(tmp_path, files):
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert "holds no .rtfs programs" in one_line_error(rtfs("conformance", str(tmp_path)), 2)
    missing = one_line_error(rtfs("conformance", str(tmp_path / "nope")), 2)
    assert "is not a directory" in missing


def test_conformance_with_nothing_to_check_fails(tmp_path):
    (tmp_path / "p.rtfs").write_text("(+ 1 2)\n", encoding="utf-8")
    assert "no expectations" in one_line_error(rtfs("conformance", str(tmp_path)), 1)


def test_conformance_names_a_corpus_file_that_is_not_utf8(tmp_path):
    (tmp_path / "bad.rtfs").write_bytes(b"(+ 1 2) ; Should return 3\n\xff\xfe")
    assert "bad.rtfs: not UTF-8" in one_line_error(rtfs("conformance", str(tmp_path)), 2)


@pytest.mark.parametrize("command", [["eval"], ["compile", "-o", "out.rtfsc"], ["dis"],
                                     ["eval", "--each"]])
def test_invalid_utf8_source_is_bad_input(tmp_path, command):
    bad = tmp_path / "bad.rtfs"
    bad.write_bytes(b'(str "caf\xe9")\n')
    args = [*command, str(bad)] if command[0] != "compile" else [
        "compile", str(bad), "-o", str(tmp_path / "out.rtfsc")]
    line = one_line_error(rtfs(*args), 2)
    assert f"{bad}: not UTF-8 text (invalid byte 0xe9 on line 1)" in line


def test_expression_that_is_not_utf8_is_bad_input():
    result = subprocess.run([sys.executable.encode(), b"-m", b"rtfs", b"eval", b"-e", b'"\xff"'],
                            check=False, capture_output=True, timeout=120)
    assert result.returncode == 2 and b"Traceback" not in result.stderr
    assert result.stderr == b"rtfs: the expression is not UTF-8 text\n"


@pytest.mark.parametrize("args, message", [
    ([], "required"), (["frob"], "invalid choice"), (["eval", "-e"], "expected one argument"),
])
def test_usage_errors_are_one_line(args, message):
    assert message in one_line_error(rtfs(*args), 2)


def test_deep_nesting_is_one_line(tmp_path):
    deep = one_line_error(rtfs("eval", "-e", "(" * 5000 + ")" * 5000), 1)
    assert "nested deeper than" in deep
    threaded = "(-> 1 " + "inc " * 20000 + ")"
    assert "nested too deeply" in one_line_error(rtfs("eval", "-e", threaded), 1)


def test_running_out_of_memory_is_one_line(tmp_path):
    """Under an address-space limit the program fails with one line, not a traceback."""
    import resource

    limit = 400 * 1024 * 1024

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    result = subprocess.run(
        [sys.executable, "-m", "rtfs", "eval", "-e", "(count (str (vec (range 9000000))))"],
        check=False, capture_output=True, text=True, timeout=300, preexec_fn=cap)
    line = one_line_error(result, 1)
    assert "memory" in line.lower(), line


def test_a_closed_stdout_ends_quietly():
    proc = subprocess.Popen([sys.executable, "-m", "rtfs", "eval", "-e", "(range 2000000)"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(8) == b"[0 1 2 3"
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 1
    assert b"Traceback" not in stderr and stderr == b""


def test_an_internal_fault_is_one_line(monkeypatch, capsys):
    from rtfs import cli

    def broken(_args):
        raise KeyError("a bug")

    monkeypatch.setattr(cli, "cmd_eval", broken)
    assert cli.main(["eval", "-e", "1"]) == 1
    err = capsys.readouterr().err
    assert err == "rtfs: internal error: KeyError: 'a bug'\n"
