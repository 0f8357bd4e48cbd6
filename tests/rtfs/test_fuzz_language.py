"""Property tests for the newer language surface: random programs built from the tokens of
types, patterns, iteration, macros and errors only ever raise RTFS errors (never a Python
exception from the reader, the compiler, the verifier or the VM)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtfs.compiler import compile_program
from rtfs.encoding import decode, encode
from rtfs.errors import RtfsError
from rtfs.reader import read
from rtfs.stdlib import BUILTINS
from rtfs.vm import VM

FUZZ = settings(max_examples=int(os.environ.get("RTFS_FUZZ_EXAMPLES", "300")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_SLOW = {"thread/sleep", "range", "numbers", "factorial", "pow", "println", "print"}
_SAFE = {k: v for k, v in BUILTINS.items() if k not in _SLOW}

_TOKENS = st.sampled_from([
    "(", ")", "[", "]", "{", "}", "#{", "`", "~", "~@", "'", ":", "x:int", "y:", "&", "_",
    ":as", ":keys", ":or", ":strs", ":when", ":let", ":while", ":int", ":string?", ":vector",
    ":map", ":union", ":and", "[:> 0]", ":tuple", ":error", ":division-by-zero",
    "fn", "defn", "let", "loop", "recur", "for", "dotimes", "case", "if-let", "when-let",
    "match", "try", "catch", "finally", "throw", "error", "deftype", "defstruct", "defmacro",
    "validate", "RuntimeError.", "Exception", "x", "y", "xs", "1", "0", "-1", "2.5", '"s"',
    "nil", "true", "+", "inc", "conj", "first", "count", "map", "vector", "str", "=", "<",
])
program_text = st.lists(_TOKENS, max_size=45).map(" ".join)


def run(text: str) -> None:
    vm = VM(builtins=_SAFE, max_depth=150)
    code = compile_program(read(text))
    try:
        vm.run(decode(encode(code)))
    except RtfsError as err:
        assert not leaked(err), f"{type(err.__cause__).__name__} leaked: {err}"
        raise


def leaked(err: RtfsError) -> bool:
    """Whether the VM's catch-all turned a Python exception into this error (it names the
    Python class in the message): a builtin or an op failed to raise an RTFS error itself."""
    cause = err.__cause__
    return (cause is not None and not isinstance(cause, RtfsError)
            and not isinstance(cause, RecursionError)
            and err.message.startswith(f"{type(cause).__name__}: "))


@FUZZ
@given(program_text)
def test_random_programs_of_the_new_forms_only_raise_rtfs_errors(text):
    try:
        run(text)
    except RtfsError:
        pass


@FUZZ
@given(st.lists(st.sampled_from(["[", "]", "(", ")", "{", "}", ":vector", ":map", ":int",
                                 ":and", ":> ", "0", ":enum", ":x", ":tuple", ":map-of",
                                 ":union", "(or", "?", ":* ", ":string"]), max_size=20)
       .map(" ".join))
def test_random_type_expressions_only_raise_rtfs_errors(annotation):
    try:
        run(f"(defn f [v : {annotation}] v) [(f 1) (f [1]) (f {{:x 1}}) (validate :int 1)]")
    except RtfsError:
        pass


# -- well-formed programs: expressions built from the forms, with random values ----------------
_ATOMS = st.sampled_from(["0", "1", "-2", "3.5", "##NaN", "##Inf", '""', '"ab"', ":k", "nil",
                          "true", "false", "[]", "[1 2]", "{}", "{:a 1}", "#{1 true}", "'(1)",
                          "x", "n", "99999999999999999999999"])
_FUNCTIONS = sorted(n for n in _SAFE if not n.startswith("#"))


def _call(args: list[str], name: str) -> str:
    return f"({name} {' '.join(args)})"


def _forms(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    two = st.tuples(children, children)
    return st.one_of(
        st.builds(_call, st.lists(children, max_size=3), st.sampled_from(_FUNCTIONS)),
        two.map(lambda p: f"(let [x {p[0]} [n & r] [x x]] {p[1]})"),
        two.map(lambda p: f"(if {p[0]} {p[1]} x)"),
        two.map(lambda p: f"(loop [n 0 acc {p[0]}] (if (< n 3) (recur (inc n) {p[1]}) acc))"),
        two.map(lambda p: f"(for [x {p[0]} :when {p[1]}] x)"),
        two.map(lambda p: f"(match {p[0]} (:int n) n [a b] {p[1]} {{:a a}} a _ :other)"),
        two.map(lambda p: f"(case {p[0]} 1 :one (2 3) {p[1]} :default)"),
        two.map(lambda p: f"(try {p[0]} (catch :arithmetic-error e {p[1]}) (catch Exception e"
                          " (:type e)))"),
        two.map(lambda p: f"((fn [x : [:union :int :string] & r : int] {p[1]}) {p[0]})"),
        two.map(lambda p: f"(let [{{:keys [a] :or {{a {p[0]}}}}} {p[1]}] a)"),
        children.map(lambda c: f"(validate [:vector :int] {c})"),
        children.map(lambda c: f"`(a ~{c} ~@[{c}])"),
        children.map(lambda c: f"(dotimes [i 2] {c})"),
        children.map(lambda c: f"(error {c})"),
    )


well_formed = st.recursive(_ATOMS, _forms, max_leaves=12).map(lambda e: f"(def x 1) (def n 2) {e}")


@FUZZ
@given(well_formed)
def test_random_well_formed_programs_only_raise_rtfs_errors(text):
    try:
        run(text)
    except RtfsError:
        pass
