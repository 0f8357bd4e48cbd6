"""Chapters 02 and 03 (syntax, grammar, core data types), as programs written for the rules.

Each case is a program of ours that exercises one rule of the chapter, with the value or the
error the rule implies.
"""

from __future__ import annotations

import pytest

from rtfs.errors import (
    ArityError,
    RtfsSyntaxError,
    RtfsTypeError,
    RtfsValidationError,
    UnboundSymbolError,
)
from rtfs.reader import form_to_value, read
from rtfs.values import Keyword, Symbol, TaggedLiteral
from tests.rtfs.conftest import evaluate, show


@pytest.mark.parametrize("text, expected", [
    # literals: arbitrary-precision integers, floats, strings with escapes, booleans, nil
    ("-100", "-100"), ("0", "0"), ("170141183460469231731687303715884105727",
                                   "170141183460469231731687303715884105727"),
    ("-2.75", "-2.75"), ('"tab:\\tthere"', '"tab:\\tthere"'),
    ('"say \\"hi\\""', '"say \\"hi\\""'), ("[true false nil]", "[true false nil]"),
    # keywords evaluate to themselves, with namespaces and dots
    ("[:fs.read :async.compute :my.ns/thing]", "[:fs.read :async.compute :my.ns/thing]"),
    # symbols with namespaces and operators are ordinary names
    ("(do (def my.namespace/function 7) my.namespace/function)", "7"),
    ("(do (def com.example:v1.0/api :versioned) com.example:v1.0/api)", ":versioned"),
    ("(do (def ! 1) (def ? 2) (+ ! ?))", "3"),
    # collections: vectors index, maps associate any value with any value, lists call
    ("[1 [2 3] 4]", "[1 [2 3] 4]"), ('["s" 42 :k [1]]', '["s" 42 :k [1]]'),
    ('{"first" 1 "last" 2}', '{"first" 1 "last" 2}'),
    ('(get {7 :seven :pi 3.5 [1 2] :pair} [1 2])', ":pair"),
    ("{:user {:id 5 :profile {:name \"N\"}}}", '{:user {:id 5 :profile {:name "N"}}}'),
    # a list of literals is data; () is the empty list
    ("(first (10 20 30))", "10"), ('(count ("a" "b"))', "2"), ("()", "()"),
    ("(rest (4 5 6))", "(5 6)"), ("(cons 3 (4 5))", "(3 4 5)"), ("(conj (4 5) 6)", "(4 5 6)"),
    # quote keeps a form as data
    ("'(* 2 3)", "(* 2 3)"), ("(first '(f x))", "f"), ("(quote (a [b] {:c d}))", "(a [b] {:c d})"),
    # comments of both kinds and #_ are ignored; commas are whitespace
    (";; a comment\n(+ 1 ; inline\n 2)", "3"), ("#| block #| nested |# |# 4", "4"),
    ("[1 #_ 2 3]", "[1 3]"), ("[1, 2, 3]", "[1 2 3]"),
])
def test_syntax_and_data_types(text, expected):
    assert show(text) == expected


def test_extended_literals_keep_their_text():
    stamp, uid, handle = evaluate('[2024-02-29T23:59:59Z 123e4567-e89b-12d3-a456-426614174000 '
                                  'resource://store/item-9]')
    assert (stamp.tag, uid.tag, handle.tag) == ("timestamp", "uuid", "resource")
    assert handle == TaggedLiteral("resource", "resource://store/item-9")


@pytest.mark.parametrize("text, expected", [
    # let binds sequentially; def makes a global; defn defines a function
    ("(let [a 2 b (* a 5)] (- b a))", "8"), ("(do (def radius 3) (* radius radius))", "9"),
    ("(do (defn cube [n] (* n n n)) (cube 3))", "27"),
    # defn in a let body closes over the let's names, and may recurse
    ("(let [step 3] (defn stepper [n] (+ n step)) (stepper 4))", "7"),
    ("(let [limit 3] (defn climb [n] (if (>= n limit) n (climb (inc n)))) (climb 0))", "3"),
    ("(let [base 2] (defn scale [f] (fn [x] (* x f base))) ((scale 5) 3))", "30"),
    (("(let [xs [1 2 3]] (defn total [v] (reduce + v)) (defn avg [v] (/ (total v) (count v)))"
     " (avg xs))"), "2"),
    # if, do, match, cond, and, or, not
    ("(if (> 1 0) :pos :neg)", ":pos"), ("(if nil 1)", "nil"), ("(do 1 2 :last)", ":last"),
    ("(match 3 0 :zero n (str \"n=\" n))", '"n=3"'), ("(cond (< 5 1) :a :else :b)", ":b"),
    ("(and 1 2 3)", "3"), ("(or false nil :x)", ":x"), ("(not nil)", "true"),
    # fn, lambda and λ make functions; & collects the rest
    ("((fn [a b] (- a b)) 9 4)", "5"), ("((lambda [s] (str s \"!\")) \"hi\")", '"hi!"'),
    ("((λ [n] (* n 10)) 4)", "40"), ("((fn [a & more] [a more]) 1 2 3)", "[1 [2 3]]"),
    ("(do (defn total [& xs] (reduce + 0 xs)) [(total) (total 4 5)])", "[0 9]"),
    # docstrings and metadata are accepted and do not change the value
    ('(do (defn sq "the square" [x] (* x x)) (sq 6))', "36"),
    ('(do ^{:doc "adds" :author "x"} (defn plus [a b] (+ a b)) (plus 1 2))', "3"),
    ("(do (defn ^{:private true} hidden [] 5) (hidden))", "5"),
    ("^{:runtime.timeout 100} (+ 2 2)", "4"),
    # #(...) shorthand
    ("(map #(* % 3) [1 2])", "[3 6]"), ("(#(+ %1 %2) 3 4)", "7"),
])
def test_special_forms(text, expected):
    assert show(text) == expected


@pytest.mark.parametrize("text, expected", [
    # match: literal, type, vector, map and wildcard patterns, in that order of the clauses
    ("(match 1 0 :zero 1 :one (:int n) n _ :other)", ":one"),
    ("(match 5 0 :zero (:int n) [:int n] _ :other)", "[:int 5]"),
    ('(match "s" (:int n) :int (:string s) [:str s] _ :other)', '[:str "s"]'),
    ("(match [3 4] [x y] (+ x y) _ :other)", "7"),
    ('(match {:name "Ada" :age 36} {:name n :age a} (str n "/" a) _ :other)', '"Ada/36"'),
    ("(match :kw [x y] :pair {:a a} :map _ :other)", ":other"),
    ("(match 12 n when (> n 10) :big n :small)", ":big"),
])
def test_match_patterns_of_the_grammar_chapter(text, expected):
    assert show(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("(defmacro unless [test & body] `(if ~test nil (do ~@body))) (unless false :ran)", ":ran"),
    ("(defmacro when [test & body] `(if ~test (do ~@body))) (when (> 2 1) :a :b)", ":b"),
    ("(let [x 1 ys [2 3]] `(f ~x ~@ys))", "(f 1 2 3)"),
    ("(let [v [:a]] `[~@v :b {:k ~(count v)}])", "[:a :b {:k 1}]"),
    ("(defmacro twice [e] `(let [v# ~e] (+ v# v#))) (twice (* 3 4))", "24"),
    ("(defmacro inc-all [& xs] `[~@(map (fn [x] `(inc ~x)) xs)]) (inc-all 1 2)", "[2 3]"),
])
def test_macros_and_quasiquote(text, expected):
    assert show(text) == expected


@pytest.mark.parametrize("text, error, message", [
    ("(+ 1", RtfsSyntaxError, "unclosed"), ("(1 2]", RtfsSyntaxError, "expected ')'"),
    ("never-bound-name", UnboundSymbolError, "never-bound-name"),
    ('(+ "hello" 42)', RtfsTypeError, "expects numbers"),
    ("((fn [x] x))", ArityError, "takes 1"), ("(let [(defn bad [] 1) 5] 1)", RtfsSyntaxError,
                                              "binding"),
    ("(defmacro loopy [] `(loopy)) (loopy)", RtfsSyntaxError, "too deeply"),
    ("`(a ~@1)", RtfsTypeError, "expects a collection"), ("~x", RtfsSyntaxError, "quasiquote"),
    (":", RtfsSyntaxError, "between a binding and its type"),
])
def test_error_conditions(text, error, message):
    with pytest.raises(error) as info:
        evaluate(text)
    assert message in info.value.message and info.value.line is not None


@pytest.mark.parametrize("text", [
    ":int", "int", "Integer", ":string?", "[:vector :int]", "[:tuple :string :int]",
    "[:map {:name :string :age :int}]", "[:map [:name :string] [:age :int]]",
    "[:fn [:int :int] :int]", "[:union :int :string]", "[:and :int [:> 0] [:< 100]]",
    "[:record [:status :string]]", "[:dict :string :any]", "[:map-of :keyword :int]",
    "[:dict (or :string :keyword) :int]", "(or :string :integer)", "CustomType",
])
def test_type_expressions_of_the_chapters_read_as_annotations(text):
    """Every type expression these chapters write is accepted in an annotation."""
    assert show(f"(do (defn f [x : {text}] :accepted) f)").startswith("#<fn")


def test_annotations_of_chapter_03_are_checked_casts():
    program = '(let [result : [:record [:status :string]] {:status "ok" :extra 1}] result)'
    assert show(program) == '{:status "ok" :extra 1}'
    with pytest.raises(RtfsValidationError, match="missing key :status"):
        evaluate("(let [result : [:record [:status :string]] {:code 1}] result)")


def test_quoted_code_is_data():
    [form] = read("'(defn f [x] x)")
    value = form_to_value(form)
    assert value[0] is Symbol("quote") and value[1][0] is Symbol("defn")
    assert evaluate("(first (second '(a (:k b))))") is Keyword("k")
