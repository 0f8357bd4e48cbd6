"""Property tests: hostile text, bytes and code only ever produce RTFS errors."""

from __future__ import annotations

import dataclasses
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtfs.bytecode import Op
from rtfs.compiler import compile_program
from rtfs.encoding import decode, encode
from rtfs.errors import BytecodeError, RtfsError
from rtfs.reader import read
from rtfs.stdlib import BUILTINS
from rtfs.verify import verify
from rtfs.vm import VM

FUZZ = settings(max_examples=int(os.environ.get("RTFS_FUZZ_EXAMPLES", "300")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Builtins whose cost is only bounded, not small: left out so that a random program is quick.
_SLOW = {"thread/sleep", "range", "factorial", "pow", "println", "print"}
_SAFE_BUILTINS = {k: v for k, v in BUILTINS.items() if k not in _SLOW}

_TOKENS = st.sampled_from([
    "(", ")", "[", "]", "{", "}", "#{", "#(", "'", "^", "^:delegation", ":remote", '"m"',
    "#_", "#|", "|#", ";", "\n", " ", "1", "-2.5e3", "0x1F", "1/0", "##NaN", '"s\\n"', '"',
    ":k", "nil", "true", "x", "y:int", "&", "%", "_", "fn", "defn", "let", "if", "do", "match",
    "when", "try", "catch", "finally", "Exception", "parallel", "call", "quote", "throw", "def",
    "and", "or", "cond", "->", "+", "-", "*", "/", "=", "map", "reduce", "first", "get", "str",
    "assoc", "count", "apply", "sort", "inc", "vector",
])
rtfs_like_text = st.lists(_TOKENS, max_size=40).map(" ".join)


def run_text(text: str) -> None:
    vm = VM(builtins=_SAFE_BUILTINS, max_depth=200)
    vm.run(compile_program(read(text)))


@FUZZ
@given(st.one_of(st.text(max_size=200), rtfs_like_text))
def test_random_text_only_raises_rtfs_errors(text):
    try:
        run_text(text)
    except RtfsError:
        pass


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_bytecode_errors(data):
    try:
        decode(data)
    except BytecodeError:
        pass


SAMPLE = compile_program(read("""
(defn f [x & more] (let [[a b] more {:keys [k]} x] (if a (+ a (or b 0)) k)))
(try (match (f {:k 1} 2 3) 5 (parallel [p 1] [q [1 2]]) n (throw n)) (catch Exception e e))
"""))
_SAMPLE_BYTES = encode(SAMPLE)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(_SAMPLE_BYTES) - 1), st.integers(0, 255)),
                min_size=1, max_size=4))
def test_corrupted_bytecode_is_refused_or_runs_safely(flips):
    data = bytearray(_SAMPLE_BYTES)
    for index, byte in flips:
        data[index] = byte
    try:
        code = decode(bytes(data))
    except BytecodeError:
        return
    try:
        VM(builtins=_SAFE_BUILTINS, max_depth=200).run(code)
    except RtfsError:
        pass


@FUZZ
@given(st.data())
def test_invalid_code_is_refused_by_the_verifier(data):
    """Random edits of operands and opcodes: either the verifier refuses the code, or the code
    it accepts runs to a value or an RTFS error (never a crash or a hang)."""
    code = SAMPLE
    ops, args = list(code.ops), list(code.args)
    for _ in range(data.draw(st.integers(1, 3))):
        pc = data.draw(st.integers(0, len(ops) - 1))
        if data.draw(st.booleans()):
            ops[pc] = data.draw(st.sampled_from(list(Op)))
        else:
            args[pc] = data.draw(st.integers(0, 70))
    mutated = dataclasses.replace(code, ops=tuple(ops), args=tuple(args))
    try:
        verify(mutated)
    except BytecodeError:
        return
    try:
        VM(builtins=_SAFE_BUILTINS, max_depth=200).run(mutated)
    except RtfsError:
        pass
