"""Error mapping: only the host errors the VM means to map become user-level RTFS errors;
any other host exception is an InternalError, reported as a fault of the implementation."""

from __future__ import annotations

import dataclasses

import pytest

from rtfs import cli
from rtfs.bytecode import Op
from rtfs.compiler import compile_program
from rtfs.errors import (
    BytecodeError,
    InternalError,
    RtfsArithmeticError,
    RtfsMemoryError,
    RtfsRecursionError,
)
from rtfs.reader import read
from rtfs.stdlib import BUILTINS
from rtfs.values import Builtin
from rtfs.verify import verify
from rtfs.vm import VM


def vm_with(fn) -> VM:
    """A VM whose builtin `host-op` runs `fn`."""
    return VM(builtins={**BUILTINS, "host-op": Builtin("host-op", fn, 0, None)})


def raising(exc: BaseException):
    def fn(*args):
        raise exc
    return fn


@pytest.mark.parametrize("exc, kind, message", [
    (ZeroDivisionError("x"), RtfsArithmeticError, "division by zero"),
    (OverflowError("int too large to convert to float"), RtfsArithmeticError,
     "arithmetic overflow: int too large"),
    (RecursionError("deep"), RtfsRecursionError, "nested too deeply for the host stack"),
    (MemoryError(), RtfsMemoryError, "out of memory"),
])
def test_host_errors_that_mean_the_program_asked_too_much_are_mapped(exc, kind, message):
    vm = vm_with(raising(exc))
    with pytest.raises(kind, match=message) as info:
        vm.run(compile_program(read("(do\n  (host-op 1))")))
    assert (info.value.line, info.value.col) == (2, 3)


@pytest.mark.parametrize("exc", [TypeError("bad operand"), KeyError("k"), ValueError("v"),
                                 AttributeError("a"), IndexError("i"), RuntimeError("r")])
def test_any_other_host_exception_is_an_internal_error_with_a_position(exc):
    vm = vm_with(raising(exc))
    with pytest.raises(InternalError) as info:
        vm.run(compile_program(read("(+ 1\n   (host-op))")))
    err = info.value
    assert "please report" in err.message and type(exc).__name__ in err.message
    assert (err.line, err.col) == (2, 4)
    assert err.__cause__ is exc


def test_an_internal_error_is_not_caught_as_a_program_error():
    vm = vm_with(raising(KeyError("k")))
    with pytest.raises(InternalError):
        vm.run(compile_program(read("(try (host-op) (catch Exception e :caught))")))


def test_a_host_exception_outside_any_frame_is_an_internal_error():
    builtin = Builtin("host-op", raising(TypeError("t")), 0, None)
    with pytest.raises(InternalError, match="please report"):
        VM().call(builtin, [])


def test_internal_errors_are_one_line_at_the_cli(monkeypatch, capsys):
    monkeypatch.setitem(BUILTINS, "host-op", Builtin("host-op", raising(KeyError("k")), 0, None))
    assert cli.main(["eval", "-e", "(host-op)"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "InternalError" in err and "please report" in err


def _function(text: str):
    return compile_program(read(text)).children()[0]


def _rewrite(code, pc: int, op: Op, arg: int | None = None):
    ops, args = list(code.ops), list(code.args)
    ops[pc] = int(op)
    if arg is not None:
        args[pc] = arg
    return dataclasses.replace(code, ops=tuple(ops), args=tuple(args))


def test_bytecode_that_uses_a_plain_local_as_a_cell_is_refused_at_run_time():
    code = _function("(defn f [x] (let [y (+ x 1)] y))")
    pc = code.ops.index(Op.LOAD_LOCAL, 1)  # the load of y
    bad = _rewrite(code, pc, Op.LOAD_DEREF)
    verify(bad)  # the verifier does not know which locals hold cells
    with pytest.raises(BytecodeError, match="not a variable cell"):
        VM().call(_closure(bad), [1])


def test_bytecode_that_reraises_a_non_error_is_refused_at_run_time():
    code = _function("(defn f [x] (do x))")
    bad = _rewrite(code, 1, Op.RERAISE)
    verify(bad)
    with pytest.raises(BytecodeError, match="not an error"):
        VM().call(_closure(bad), [1])


def _closure(code):
    from rtfs.values import Closure

    return Closure(code, ())
