"""Chapter 13: type annotations checked at run time where values cross a boundary."""

from __future__ import annotations

import dataclasses

import pytest

from rtfs.bytecode import Op
from rtfs.compiler import compile_program
from rtfs.encoding import decode, encode
from rtfs.errors import BytecodeError, RtfsSyntaxError, RtfsValidationError
from rtfs.reader import read
from rtfs.verify import verify
from rtfs.vm import VM
from tests.rtfs.conftest import evaluate, show

# (type, a value of it, a value not of it)
TYPES = [
    (":int", "3", "3.0"), ("int", "-7", "true"), ("Integer", "0", '"0"'), (":float", "1.5", "1"),
    (":number", "2", ":two"), (":number", "2.5", "nil"), (":string", '""', ":s"),
    (":bool", "false", "nil"), (":boolean", "true", "1"), (":nil", "nil", "false"),
    (":keyword", ":k", '"k"'), (":symbol", "'s", ":s"), (":any", "nil", None),
    (":vector", "[]", "'()"), (":list", "'(1)", "[1]"), (":map", "{}", "[]"),
    (":set", "#{}", "[]"), (":fn", "inc", ":k"), (":string?", "nil", "1"),
    ("int?", "nil", '"1"'), ("[:optional :int]", "nil", '"x"'),
    ("[:vector :int]", "[1 2]", "[1 2.0]"), ("[:vector [:vector :string]]", '[["a"] []]',
                                              '[["a"] [1]]'),
    ("[:list :keyword]", "'(:a :b)", "'(:a 1)"), ("[:set :int]", "#{1 2}", "#{1 :x}"),
    ("[:tuple :string :int]", '["a" 1]', '["a" 1 2]'), ("[:tuple]", "[]", "[1]"),
    ("[:array :int [2 2]]", "[[1 2] [3 4]]", "[[1 2] [3]]"),
    ("[:map [:name :string] [:age :int]]", '{:name "x" :age 1 :extra true}', '{:name "x"}'),
    ("[:map [:name :string] [:age :int ?]]", '{:name "x"}', '{:name "x" :age "old"}'),
    ("[:map [:id :int] [:* :string]]", '{:id 1 :note "n"}', '{:id 1 :note 5}'),
    ("[:record [:status :string]]", '{:status "ok"}', "{:status :ok}"),
    ("{:name :string :age :int}", '{:name "a" :age 2}', '{:name "a" :age "2"}'),
    ("[:map {:name :string}]", '{:name "a"}', "{:name 1}"),
    ("[:map-of :keyword :int]", "{:a 1 :b 2}", '{:a 1 "b" 2}'),
    ("[:dict :string :any]", '{"k" [1]}', "{:k 1}"),
    ("[:dict [:union :string :keyword] :int]", '{"a" 1 :b 2}', "{1 2}"),
    ("[:union :int :string]", '"s"', ":k"), ("(or :string :integer)", "4", "4.0"),
    ("[:and :int [:> 0] [:< 100]]", "99", "100"), ("[:and :int [:>= 0]]", "0", "-1"),
    ("[:and :number [:in-range 1 2]]", "1.5", "3"), ("[:and :string [:min-length 2]]", '"ab"',
                                                     '"a"'),
    ("[:and :string [:max-length 2]]", '"ab"', '"abc"'),
    ("[:and :string [:length 3]]", '"abc"', '"ab"'),
    ("[:and :string [:matches-regex \"^[a-z]+$\"]]", '"abc"', '"ab1"'),
    ("[:and :vector [:min-count 1]]", "[1]", "[]"), ("[:and :vector [:non-empty]]", "[0]",
                                                     "[]"),
    ("[:and :map [:has-key :id]]", "{:id 1}", "{}"),
    ("[:and :map [:required-keys [:a :b]]]", "{:a 1 :b 2}", "{:a 1}"),
    ("[:and :int [:= 5]]", "5", "6"), ("[:and :int [:!= 5]]", "6", "5"),
    ("[:enum :red :green]", ":red", ":blue"), ("[:val 42]", "42", "43"),
    ("[:fn [:int] :int]", "(fn [x] x)", "42"),
]


@pytest.mark.parametrize("kind, good, bad", TYPES)
def test_parameters_accept_their_type_and_refuse_others(kind, good, bad):
    program = f"(do (defn f [x : {kind}] :ok) (f {good}))"
    assert show(program) == ":ok"
    if bad is not None:
        with pytest.raises(RtfsValidationError) as info:
            evaluate(f"(do (defn f [x : {kind}] :ok)\n(f {bad}))")
        assert "argument x of f" in info.value.message
        assert (info.value.line, info.value.col) == (1, 14)  # where x : T is written


@pytest.mark.parametrize("kind, good, bad", TYPES[:20])
def test_validate_answers_the_same_question(kind, good, bad):
    datum = kind if kind.startswith(("[", "{", "(")) else (
        kind if kind.startswith(":") else f"'{kind}")
    assert show(f"(validate {datum} {good})") == "true"
    if bad is not None:
        assert show(f"(validate {datum} {bad})") == "false"


@pytest.mark.parametrize("text, expected", [
    # every notation of a parameter type
    ("((fn [x:int] x) 1)", "1"), ("((fn [x :int] x) 1)", "1"), ("((fn [x : int] x) 1)", "1"),
    ("((fn [x: int] x) 1)", "1"), ("((fn [x:[:vector :int]] x) [1])", "[1]"),
    ("((fn [x : Integer y : Integer] (+ x y)) 1 2)", "3"),
    # return types: keyword, colon, attached to the vector
    ("((fn [x] :int (* 2 x)) 4)", "8"), ("((fn [x] : int (* 2 x)) 4)", "8"),
    ("((fn [x]:int (* 2 x)) 4)", "8"), ("(do (defn g [] : [:vector :int] [1]) (g))", "[1]"),
    # typed variadic parameters: each rest argument
    ("(do (defn total [& xs : int] (reduce + 0 xs)) [(total) (total 1 2 3)])", "[0 6]"),
    ("(do (defn total [& xs :int] (reduce + 0 xs)) (total 4))", "4"),
    ("(do (defn tag [t :keyword & vs : string] [t vs]) (tag :a \"x\" \"y\"))",
     '[:a ["x" "y"]]'),
    # let, def, loop, for, parallel bindings
    ("(let [x : int 1 y:string \"s\"] [x y])", '[1 "s"]'), ("(do (def n : int 5) n)", "5"),
    ("(do (def n :int 5) n)", "5"), ("(do (def s:string \"v\") s)", '"v"'),
    ("(loop [i : int 0] (if (< i 3) (recur (inc i)) i))", "3"),
    ("(for [x : int [1 2]] (* 10 x))", "[10 20]"),
    ("(parallel [a:int 1] [b : string \"s\"])", '[1 "s"]'),
    # {:type {:args [...] :return T}} before or after the parameters
    ("(do (defn area {:type {:args [:int :int] :return :int}} [w h] (* w h)) (area 2 3))", "6"),
    ("(do (defn area [w h] {:type {:args [:int :int] :return :int}} (* w h)) (area 2 3))", "6"),
    # aliases: defined before or after the function, recursive, optional
    ("(do (deftype Age [:and :int [:>= 0]]) (defn older [a : Age] (inc a)) (older 1))", "2"),
    ("(do (defn older [a : Age] (inc a)) (deftype Age :int) (older 1))", "2"),
    (("(do (deftype Tree [:union :nil [:tuple Tree :int Tree]]) (defn ok [t : Tree] :ok)"
     " (ok [[nil 1 nil] 2 nil]))"), ":ok"),
    ("(do (deftype Name :string) (defn hello [n : Name?] (str \"hi \" n)) (hello nil))",
     '"hi nil"'),  # (str nil) is "nil" in the corpus
    (("(do (defstruct Point :x :int :y :int) [(Point? {:x 1 :y 2}) (Point? {:x 1})"
     " (:y (Point {:x 1 :y 2}))])"), "[true false 2]"),
    # custom type names nobody defines are documentation only
    ("(do (defn process [x : CustomType] : MyResult x) (process 9))", "9"),
])
def test_annotation_positions(text, expected):
    assert show(text) == expected


@pytest.mark.parametrize("text, message, position", [
    ("(do (defn f [x] :string (* 2 x))\n(f 1))", "the result of f: expected :string, got int 2",
     (1, 17)),
    ("(let [a 1\n      b : int \"two\"] b)", "binding b: expected :int", (2, 7)),
    ("(do (defn total [& xs : int] 0) (total 1 :two))", "rest argument 2): expected :int",
     (1, 20)),
    ("(def n :int 1.5)", "def n: expected :int, got float 1.5", (1, 6)),
    ("(loop [i : int 0] (if (< i 3) (recur (str i)) i))",
     "argument i of fn: expected :int, got string", (1, 8)),
    ("(do (deftype Age [:and :int [:>= 0]]) (defn f [a : Age] a) (f -1))",
     "argument a of f: Age: -1 fails [:>= 0]", (1, 48)),
    ("(do (defn f [p : [:map [:age :int]]] p) (f {:age \"old\"}))",
     'at :age: expected :int, got string "old"', (1, 14)),
    ("(do (defn f [v : [:vector :int]] v) (f [1 2 :three]))",
     "at [2]: expected :int, got keyword :three", (1, 14)),
    ("(parallel [a:int \"x\"])", "binding a: expected :int", (1, 12)),
    ("(do (defstruct Point :x :int :y :int) (Point {:x 1}))", "missing key :y", (1, 5)),
])
def test_mismatches_are_validation_errors_with_positions(text, message, position):
    with pytest.raises(RtfsValidationError) as info:
        evaluate(text)
    assert message in info.value.message
    assert (info.value.line, info.value.col) == position
    assert info.value.kind == "ValidationError" and isinstance(info.value, TypeError)


@pytest.mark.parametrize("annotation, message", [
    ("[:vector]", "takes 1 argument"), ("[:frob :int]", "unknown type constructor :frob"),
    ("[:> 0]", "is a predicate"), ("[:and :int [:> \"x\"]]", "takes one number"),
    ('[:and :string [:matches-regex "("]]', "invalid regular expression"),
    ("[:map [:a]]", "a record field"), ("5", "not a type expression"),
    ("(frob :int)", "not a type expression"), ("[:map-of :int]", "takes 2 argument"),
])
def test_malformed_types_are_syntax_errors_where_written(annotation, message):
    with pytest.raises(RtfsSyntaxError) as info:
        evaluate(f"(defn f [x : {annotation}] x)")
    assert message in info.value.message and (info.value.line, info.value.col) == (1, 14)


def test_type_notations_give_one_interface():
    def iface(text):
        return compile_program(read(text)).children()[0].interface_hash()

    same = {iface(t) for t in ["(defn f [x:int] :int x)", "(defn f [x :int] :int x)",
                               "(defn f [x : Integer] : int x)", "(defn f [x : int] :int x)"]}
    assert len(same) == 1
    assert iface("(defn f [x:float] :int x)") not in same


def test_typed_code_survives_encoding_and_the_verifier_checks_annotations():
    code = compile_program(read("(defn f [x : [:vector :int]] :ok) (f [1])"))
    assert VM().run(decode(encode(code))) == evaluate(":ok")
    child = code.children()[0]
    at = child.ops.index(Op.CHECK_TYPE)
    consts = list(child.consts)
    consts[child.args[at]] = ("argument x", (evaluate(":frob"),))
    broken = dataclasses.replace(child, consts=tuple(consts))
    with pytest.raises(BytecodeError, match="unknown type constructor"):
        verify(broken)


def test_a_check_runs_on_every_call_of_the_function():
    vm = VM()
    evaluate("(defn half [n : int] (/ n 2))", vm)
    assert evaluate("(half 4)", vm) == 2
    with pytest.raises(RtfsValidationError):
        evaluate("(half 4.0)", vm)
    assert evaluate("(map half [2 4])", vm) == (1, 2)
    with pytest.raises(RtfsValidationError):
        evaluate('(map half [2 "4"])', vm)
