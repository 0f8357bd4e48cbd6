"""`python -m rtfs` / `rtfs`: evaluate, compile, run and check RTFS programs.

  rtfs eval -e "(+ 1 2)"          print the value of the last form
  rtfs eval FILE                  the same for a file
  rtfs eval --each FILE           one line per top-level form: its value or `!error ...`
  rtfs compile FILE -o OUT.rtfsc  write bytecode
  rtfs run OUT.rtfsc              verify and run bytecode, print the last value
  rtfs dis FILE|OUT.rtfsc         print the bytecode
  rtfs conformance DIR            run a conformance corpus (see rtfs.conformance)

Errors are one line on stderr, never a traceback; exit 1 for an RTFS error, 2 for a file
that cannot be read or bad usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rtfs.bytecode import Code
from rtfs.compiler import compile_program
from rtfs.encoding import decode, encode
from rtfs.errors import RtfsError
from rtfs.printer import to_readable
from rtfs.reader import read, read_each
from rtfs.vm import VM


class UsageError(Exception):
    """A file that cannot be read or written; exit status 2."""


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read {path}: {err.strerror or err}") from err


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
    text = args.expr if args.expr is not None else _read_text(args.file)
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
    for item in read_each(text):
        if isinstance(item, RtfsError):
            print(f"!error {_error_line(item)}", flush=True)
            continue
        try:
            value = vm.run(compile_program([item], resolve_source=vm.source_hash_of))
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
    from rtfs import conformance

    directory = Path(args.directory)
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory")
    known = {}
    if args.known_failures:
        try:
            known = conformance.load_known_failures(Path(args.known_failures))
        except (OSError, ValueError) as err:
            raise UsageError(str(err)) from err
    text, ok = conformance.report(conformance.run_corpus(directory), known)
    print(text)
    return 0 if ok or not args.known_failures else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtfs", description="The RTFS language.")
    sub = parser.add_subparsers(dest="command", required=True)
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
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except UsageError as err:
        print(f"rtfs: {err}", file=sys.stderr)
        return 2
    except RtfsError as err:
        print(f"rtfs: {_error_line(err)}", file=sys.stderr)
        return 1
    except FileError as err:
        print(f"rtfs: {err.path}: {_error_line(err.error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
