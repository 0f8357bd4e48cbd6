"""Property tests: hostile text, bytes and code, and generated programs, only ever produce
RTFS errors, and never an `InternalError` (which is how a fault of the VM or of a builtin
shows: a host exception the VM did not mean to map)."""

from __future__ import annotations

import dataclasses
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtfs.bytecode import Op
from rtfs.compiler import compile_program
from rtfs.deadline import Deadline
from rtfs.encoding import decode, encode
from rtfs.errors import BytecodeError, InternalError, RtfsError
from rtfs.printer import to_readable
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
    except InternalError:
        raise
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
    except InternalError:
        raise
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
    except InternalError:
        raise
    except RtfsError:
        pass


# -- generated programs: every builtin applied to every kind of value --------------------------
_QUIET = {"thread/sleep", "println", "print"}
_PROGRAM_BUILTINS = {k: v for k, v in BUILTINS.items() if k not in _QUIET}
_ATOMS = st.sampled_from([
    "0", "1", "-1", "2", "3", "7", "1.5", "-0.0", "0.0", "1e308", "##NaN", "##Inf", "##-Inf",
    "1180591620717411303424", "-9223372036854775809", "nil", "true", "false", '""', '"abc"',
    '"a,b"', '"Ab c"', ":k", ":a", "'sym", "[]", "{}", "#{}", "[1 2 3]", "[:a 1]", "'(1 2)",
    "{:a 1 :b [2]}", "#{1 :a}", "[[1 2] [3 4]]", '{"k" 1}', "x", "[x]", "{:k x}",
])
_NAMES = st.sampled_from(sorted(_PROGRAM_BUILTINS))
_KINDS = st.sampled_from(["Exception", "TypeError", "ArityError", "ArithmeticError",
                          "UserError", "MatchError", "IndexError"])


_HIGHER = st.sampled_from(["map", "filter", "remove", "keep", "some", "every?", "group-by",
                           "sort-by", "partition-by", "map-indexed", "mapcat"])


def _forms(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    args = st.lists(children, max_size=3).map(" ".join)
    call = st.tuples(_NAMES, args).map(lambda t: f"({t[0]} {t[1]})")
    fn1 = children.map(lambda c: f"(fn [x] {c})")
    fn2 = children.map(lambda c: f"(fn [x y] {c})")
    return st.one_of(
        call, call, call, call,
        st.tuples(_NAMES, args).map(lambda t: f"(apply {t[0]} [{t[1]}])"),
        st.tuples(_HIGHER, _NAMES, children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(_HIGHER, fn1, children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(fn2, children, children).map(lambda t: f"(reduce {t[0]} {t[1]} {t[2]})"),
        st.tuples(fn2, children).map(lambda t: f"(sort {t[0]} {t[1]})"),
        st.tuples(_NAMES, children, children).map(lambda t: f"(reduce {t[0]} {t[1]} {t[2]})"),
        args.map(lambda a: f"[{a}]"),
        st.tuples(children, children).map(lambda t: f"{{{t[0]} {t[1]}}}"),
        st.tuples(children, children, children).map(lambda t: f"(if {t[0]} {t[1]} {t[2]})"),
        st.tuples(children, children).map(lambda t: f"(let [x {t[0]}] {t[1]})"),
        st.tuples(children, children).map(lambda t: f"(let [[x & y] {t[0]}] {t[1]})"),
        st.tuples(children, children).map(lambda t: f"(let [{{:keys [x]}} {t[0]}] {t[1]})"),
        st.tuples(fn1, children).map(lambda t: f"({t[0]} {t[1]})"),
        st.tuples(children, _KINDS, children).map(
            lambda t: f"(try {t[0]} (catch {t[1]} e (:message e)) (finally {t[2]}))"),
        st.tuples(children, _KINDS).map(
            lambda t: f"(try (throw {t[0]}) (catch {t[1]} e e))"),
        st.tuples(children, children).map(
            lambda t: f"(match {t[0]} [a b] {t[1]} {{:k v}} v 1 :one _ x)"),
        st.tuples(children, children).map(
            lambda t: f"(match {t[0]} [a & r] (when (= a 1) {t[1]}) \"s\" :str _ :none)"),
        st.lists(children, min_size=1, max_size=3).map(lambda xs: f"(and {' '.join(xs)})"),
        st.lists(children, min_size=1, max_size=3).map(lambda xs: f"(or {' '.join(xs)})"),
        st.lists(children, min_size=2, max_size=6).map(
            lambda xs: f"(cond {' '.join(xs[: len(xs) // 2 * 2])} :else {xs[-1]})"),
        st.tuples(children, children).map(lambda t: f"(when {t[0]} {t[1]})"),
        st.tuples(children, children).map(lambda t: f"(when-not {t[0]} {t[1]})"),
        st.tuples(children, children).map(lambda t: f"(do {t[0]} {t[1]})"),
        st.tuples(children, children).map(lambda t: f"(-> {t[0]} (vector {t[1]}) first)"),
        st.tuples(children, children).map(
            lambda t: f"(let [y {t[0]} g (fn [z] (if z y {t[1]}))] [(g true) (g nil)])"),
        children.map(lambda c: f"((fn f [n] (if (< n 1) {c} (f (- n 1)))) 3)"),
        st.tuples(children, children).map(lambda t: f"(parallel [a {t[0]}] [b {t[1]}])"),
        st.tuples(children, children).map(
            lambda t: f"((fn [[a b] {{:keys [k]}}] [a b k {t[1]}]) {t[0]} {t[0]})"),
        st.tuples(children, children, children).map(
            lambda t: f"(try (try {t[0]} (catch TypeError e {t[1]})) "
                      f"(catch Exception e (str e)) (finally {t[2]}))"),
        # the language of the specification: iteration, case, if-let, types, quasiquote
        st.tuples(children, children).map(
            lambda t: f"(loop [i 0 acc {t[0]}] (if (< i 3) (recur (inc i) {t[1]}) acc))"),
        st.tuples(children, children).map(lambda t: f"(for [x {t[0]} :when x] {t[1]})"),
        st.tuples(children, children).map(lambda t: f"(dotimes [i 2] {t[0]} {t[1]})"),
        st.tuples(children, children).map(lambda t: f"(case {t[0]} 1 :one (2 3) {t[1]} :other)"),
        st.tuples(children, children).map(lambda t: f"(if-let [x {t[0]}] {t[1]} :none)"),
        st.tuples(children, children).map(
            lambda t: f"((fn [x:int & ys:string] [x ys]) {t[0]} {t[1]})"),
        st.tuples(children, children).map(lambda t: f"`[x ~{t[0]} ~@{t[1]}]"),
    )


programs = st.recursive(_ATOMS, _forms, max_leaves=10).map(lambda body: f"(let [x 2] {body})")


def run_program(text: str, **vm_args: object) -> object:
    """The program's value (printed) or its RTFS error; a non-RTFS exception escapes."""
    vm = VM(builtins=_PROGRAM_BUILTINS, max_depth=200, **vm_args)
    try:
        value = vm.run(compile_program(read(text)), deadline=Deadline.after(10.0))
        return to_readable(value)
    except RtfsError as err:
        return err


@FUZZ
@given(programs)
def test_generated_programs_never_fault_the_vm(text):
    outcome = run_program(text)
    assert not isinstance(outcome, InternalError), (text, outcome)
