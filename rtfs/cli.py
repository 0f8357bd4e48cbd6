"""`python -m rtfs` / `rtfs`: evaluate, compile, run and check RTFS programs.

  rtfs eval -e "(+ 1 2)"          print the value of the last form
  rtfs eval FILE                  the same for a file
  rtfs eval --each FILE           one line per top-level form: its value or `!error ...`
  rtfs compile FILE -o OUT.rtfsc  write bytecode
  rtfs run OUT.rtfsc              verify and run bytecode, print the last value
  rtfs dis FILE|OUT.rtfsc         print the bytecode
  rtfs conformance DIR            run a conformance corpus (see rtfs.conformance)

Errors are one line on stderr, never a traceback; exit 1 for a failing program (an RTFS
error, a program too deep or too large for this process, a conformance run with unexpected
failures), 2 for bad input: a file that cannot be read or is not UTF-8, bad usage, a corpus
directory with no programs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

from rtfs.bytecode import Code
from rtfs.compiler import compile_program
from rtfs.encoding import decode, encode
from rtfs.errors import RtfsError
from rtfs.macros import MacroTable
from rtfs.printer import to_readable
from rtfs.reader import read, read_each
from rtfs.vm import VM


class UsageError(Exception):
    """A file that cannot be read or written; exit status 2."""


def _read_text(path: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror or err}") from err
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise UsageError(f"{path}: not UTF-8 text (invalid byte 0x{data[err.start]:02x} "
                         f"on line {line})") from err


def _expression(text: str) -> str:
    """A `-e` argument; bytes that were not UTF-8 arrive as lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise UsageError("the expression is not UTF-8 text") from err
    return text


def _error_line(err: RtfsError, fallback: tuple[int, int] | None = None) -> str:
    line, col = (err.line, err.col) if err.line is not None else (fallback or (None, None))
    where = f" ({line}:{col})" if line is not None else ""
    return f"{err.kind}: {err.message}{where}"


class FileError(Exception):
    """An RTFS error in a named file: reported as `file: Kind: message (line:col)`."""

    def __init__(self, path: str, error: RtfsError) -> None:
        super().__init__(path, error)
        self.path, self.error = path, error


def cmd_eval(args: argparse.Namespace) -> int:
    if args.each:
        return _eval_each(_read_text(args.each))
    text = _expression(args.expr) if args.expr is not None else _read_text(args.file)
    vm = VM()
    try:
        value = vm.run(compile_program(read(text), resolve_source=vm.source_hash_of))
    except RtfsError as err:
        if args.file is None:
            raise
        raise FileError(args.file, err) from err
    print(to_readable(value))
    return 0


def _eval_each(text: str) -> int:
    vm = VM(out=sys.stderr)  # stdout holds exactly one line per form
    macros = MacroTable()  # a macro one form defines is there for the next ones
    for item in read_each(text):
        if isinstance(item, RtfsError):
            print(f"!error {_error_line(item)}", flush=True)
            continue
        try:
            value = vm.run(compile_program([item], resolve_source=vm.source_hash_of,
                                           macros=macros))
        except RtfsError as err:
            print(f"!error {_error_line(err, (item.line, item.col))}", flush=True)
            continue
        print(to_readable(value), flush=True)
    return 0


def _compile_file(path: str) -> Code:
    try:
        return compile_program(read(_read_text(path)))
    except RtfsError as err:
        raise FileError(path, err) from err


def cmd_compile(args: argparse.Namespace) -> int:
    data = encode(_compile_file(args.file))
    try:
        Path(args.output).write_bytes(data)
    except OSError as err:
        raise UsageError(f"cannot write {args.output}: {err.strerror}") from err
    return 0


def _load_bytecode(path: str) -> Code:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from err
    return decode(data)


def cmd_run(args: argparse.Namespace) -> int:
    try:
        value = VM().run(_load_bytecode(args.file))
    except RtfsError as err:
        raise FileError(args.file, err) from err
    print(to_readable(value))
    return 0


def cmd_dis(args: argparse.Namespace) -> int:
    is_bytecode = args.file.endswith(".rtfsc")
    code = _load_bytecode(args.file) if is_bytecode else _compile_file(args.file)
    print(code.disassemble())
    return 0


def cmd_conformance(args: argparse.Namespace) -> int:
    """Exit 0 only when every failure is a listed known one (none without the list) and no
    listed one passes; 2 when there is no corpus to run."""
    from rtfs import conformance

    known = {}
    if args.known_failures:
        try:
            known = conformance.load_known_failures(Path(args.known_failures))
        except (OSError, ValueError) as err:
            raise UsageError(str(err)) from err
    try:
        outcomes = conformance.run_corpus(Path(args.directory))
    except conformance.CorpusError as err:
        raise UsageError(str(err)) from err
    text, ok = conformance.report(outcomes, known)
    print(text)
    if not any(o.passed is not None for o in outcomes):
        print(f"rtfs: {args.directory}: no expectations to check", file=sys.stderr)
        return 1
    return 0 if ok else 1


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, exit 2 (argparse prints the whole usage block)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rtfs", description="The RTFS language.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    ev = sub.add_parser("eval", help="evaluate RTFS text")
    source = ev.add_mutually_exclusive_group(required=True)
    source.add_argument("-e", dest="expr", metavar="EXPR", help="RTFS text to evaluate")
    source.add_argument("--each", metavar="FILE", help="print one line per top-level form")
    source.add_argument("file", nargs="?", help="an .rtfs file")
    ev.set_defaults(run=cmd_eval)
    comp = sub.add_parser("compile", help="compile a file to bytecode")
    comp.add_argument("file")
    comp.add_argument("-o", dest="output", required=True)
    comp.set_defaults(run=cmd_compile)
    run = sub.add_parser("run", help="verify and run bytecode")
    run.add_argument("file")
    run.set_defaults(run=cmd_run)
    dis = sub.add_parser("dis", help="print bytecode")
    dis.add_argument("file")
    dis.set_defaults(run=cmd_dis)
    conf = sub.add_parser("conformance", help="run a conformance corpus")
    conf.add_argument("directory")
    conf.add_argument("--known-failures", metavar="FILE")
    conf.set_defaults(run=cmd_conformance)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; never lets a traceback reach the user."""
    for stream in (sys.stdout, sys.stderr):  # a value no terminal encoding can show is escaped
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except UsageError as err:
        return _fail(f"rtfs: {err}", 2)
    except RtfsError as err:
        return _fail(f"rtfs: {_error_line(err)}", 1)
    except FileError as err:
        return _fail(f"rtfs: {err.path}: {_error_line(err.error)}", 1)
    except MemoryError:
        return _fail("rtfs: out of memory: the program needs more memory than this process has", 1)
    except RecursionError:
        return _fail("rtfs: the program is nested too deeply for this implementation", 1)
    except BrokenPipeError:
        _silence_stdout()  # the reader went away (`rtfs ... | head`): nothing left to say
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # noqa: BLE001 - an implementation fault: one line, no traceback
        return _fail(f"rtfs: internal error: {type(err).__name__}: {err}", 1)


def _fail(line: str, status: int) -> int:
    try:
        print(line[:2000], file=sys.stderr)
    except (OSError, ValueError):
        pass
    return status


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
