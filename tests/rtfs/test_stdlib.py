"""The standard library, checked against values written out by hand."""

from __future__ import annotations

import re

import pytest

from rtfs.errors import RtfsArithmeticError, RtfsIndexError, RtfsTypeError, RtfsValueError
from rtfs.stdlib import BUILTINS
from tests.rtfs.conftest import evaluate, show


@pytest.mark.parametrize("text, expected", [
    # numbers: int stays int when exact, floats stay floats
    ("(+)", "0"), ("(+ 1 2.5)", "3.5"), ("(- 5)", "-5"), ("(* 1.5 2)", "3.0"), ("(/ 6 2)", "3"),
    ("(/ 5 2)", "2.5"), ("(/ 4)", "0.25"), ("(/ 6.0 2)", "3.0"), ("(mod -7 3)", "2"),
    ("(rem -7 3)", "-1"), ("(quot -7 2)", "-3"), ("(inc 1.5)", "2.5"), ("(max 1 2.5 2)", "2.5"),
    ("(min 3 1 2)", "1"), ("(abs -3)", "3"), ("(factorial 20)", "2432902008176640000"),
    ("(* 9223372036854775807 10)", "92233720368547758070"), ("(pow 2 100)",
     "1267650600228229401496703205376"), ("(sqrt 16)", "4.0"), ("(round 2.5)", "3"),
    ("(round -2.5)", "-3"), ("(even? 0)", "true"), ("(odd? -3)", "true"),
    # comparison and logic
    ("(= 1 1.0)", "true"), ("(= 1 true)", "false"), ("(= [1 2] [1 2] [1 2])", "true"),
    ("(= {:a [1]} {:a [1]})", "true"), ("(not= 1 2)", "true"), ("(< 1 2 3)", "true"),
    ("(< 1 3 2)", "false"), ("(>= 2 2 1)", "true"), ("(not nil)", "true"), ("(not 0)", "false"),
    ("(compare [1 2] [1 3])", "-1"), ("(compare :b :a)", "1"), ("(compare nil 1)", "-1"),
    # strings
    ('(str "a" 1 :k nil [1 "b"])', '"a1:knil[1 \\"b\\"]"'), ("(str 3.0)", '"3.0"'),
    ('(substring "hello" 1 3)', '"el"'), ('(substring "hello" 2)', '"llo"'),
    ('(string-length "héllo")', "5"), ('(string-contains "abc" "bc")', "true"),
    ('(upper-case "ab")', '"AB"'), ('(split "a,b,,c" ",")', '["a" "b" "" "c"]'),
    ('(join "-" [1 2 3])', '"1-2-3"'), ('(trim "  x ")', '"x"'),
    ('(pr-str "a" 1)', '"\\"a\\" 1"'),
    # collections
    ("(get {:a 1} :a)", "1"), ("(get [1 2] 5 :none)", ":none"), ("(get {1 :x} true)", "nil"),
    ("(get-in {:a [{:b 2}]} [:a 0 :b])", "2"), ("(nth [1 2 3] 2)", "3"),
    ("(nth [1] 5 :d)", ":d"), ("(count nil)", "0"), ("(count #{1 2})", "2"),
    ("(first nil)", "nil"), ("(second [1 2])", "2"), ("(last [])", "nil"),
    ("(rest nil)", "[]"), ("(next [1])", "nil"), ("(conj nil 1)", "(1)"),
    ("(conj '(2 3) 1)", "(2 3 1)"), ("(conj #{1} 2 1)", "#{1 2}"),
    ("(conj {:a 1} {:b 2})", "{:a 1 :b 2}"), ("(cons 0 '(1))", "(0 1)"),
    ("(assoc [1 2] 2 3)", "[1 2 3]"), ("(assoc nil :a 1)", "{:a 1}"),
    ("(assoc-in {} [:a :b] 1)", "{:a {:b 1}}"), ("(update-in {:a {:n 1}} [:a :n] + 10)",
     "{:a {:n 11}}"), ("(update [1 2] 1 * 5)", "[1 10]"), ("(merge nil {:a 1} nil)", "{:a 1}"),
    ("(merge nil nil)", "nil"), ("(keys {:a 1 :b 2})", "[:a :b]"),
    ("(vals {:a 1 :b 2})", "[1 2]"), ("(contains? #{:x} :x)", "true"),
    ("(contains? [5 6] 1)", "true"), ("(contains? [5 6] 6)", "false"),
    ("(zipmap [:a :b] [1 2])", "{:a 1 :b 2}"), ("(into [1] '(2 3))", "[1 2 3]"),
    ("(into #{} [1 1 2])", "#{1 2}"), ("(empty [1])", "[]"), ("(vec {:a 1})", "[[:a 1]]"),
    ("(concat [1] nil '(2) \"ab\")", '[1 2 "a" "b"]'), ("(take 5 [1 2])", "[1 2]"),
    ("(drop -1 [1 2])", "[1 2]"), ("(distinct [1 true 1 true 2])", "[1 true 2]"),
    ("(flatten [1 [2 [3 [4]]] 5])", "[1 2 3 4 5]"), ("(partition 2 1 [1 2 3])",
     "[[1 2] [2 3]]"), ("(range 3 0 -1)", "[3 2 1]"),
    ("(sort [\"b\" \"a\" \"c\"])", '["a" "b" "c"]'), ("(sort [[1 2] [1] [0 5]])",
     "[[1] [0 5] [1 2]]"), ("(sort (fn [a b] (- b a)) [1 3 2])", "[3 2 1]"),
    ("(sort-by count [[1 2] [1] []])", "[[] [1] [1 2]]"),
    # higher-order
    ("(map + [1 2 3] [10 20])", "[11 22]"), ("(mapcat (fn [x] [x x]) [1 2])", "[1 1 2 2]"),
    ("(remove odd? [1 2 3])", "[2]"), ("(keep (fn [x] (if (odd? x) x)) [1 2 3])", "[1 3]"),
    ("(reduce + [])", "0"), ("(reduce + 10 [1 2])", "13"), ("(apply + 1 2 [3 4])", "10"),
    ("(some even? [1 3])", "nil"), ("(every? even? [])", "true"),
    ("((comp inc (partial * 2)) 5)", "11"), ("((constantly 7) 1 2)", "7"),
    ("(partition-by even? [2 4 1 3 6])", "[[2 4] [1 3] [6]]"),
    ("(frequencies \"abca\")", '{"a" 2 "b" 1 "c" 1}'),
    # predicates and names
    ("[(int? 1) (int? 1.0) (float? 1.0) (number? true) (bool? nil) (fn? :k) (fn? inc)]",
     "[true false true false false false true]"),
    ("[(set? #{}) (list? '()) (coll? {}) (some? false) (type-of 1.5)]",
     "[true true true true :float]"),
    ("[(keyword \"a\") (symbol \"b\") (name :c) (name 'd)]", "[:a b \"c\" \"d\"]"),
])
def test_builtin(text, expected):
    assert show(text) == expected


@pytest.mark.parametrize("text, error, message", [
    ("(/ 1 0)", RtfsArithmeticError, "division by zero"),
    ("(/ 1.5 0.0)", RtfsArithmeticError, "division by zero"),
    ("(mod 1 0)", RtfsArithmeticError, "division by zero"),
    ('(inc "a")', RtfsTypeError, "inc expects numbers, got string"),
    ("(< 1 :a)", RtfsTypeError, "< expects numbers"),
    ("(even? 1.0)", RtfsTypeError, "even? expects an integer"),
    ("(nth [1] 3)", RtfsIndexError, "nth index 3 outside 0..0"),
    ("(assoc [1] 5 2)", RtfsIndexError, "assoc index 5"),
    ("(subvec [1 2] 1 5)", RtfsIndexError, "subvec range"),
    ('(substring "abc" 2 1)', RtfsValueError, "substring range"),
    ("(range 0 1 0)", RtfsValueError, "step of 0"),
    ("(range 100000000)", RtfsValueError, "more than 10000000 items"),
    ("(hash-map :a)", RtfsValueError, "key/value pairs"),
    ("(count 5)", RtfsTypeError, "count expects a collection"),
    ("(first 5)", RtfsTypeError, "first expects a collection"),
    ("(sort [1 :a])", RtfsTypeError, "cannot compare"),
    ("(keys [1])", RtfsTypeError, "keys expects a map"),
    ("(factorial -1)", RtfsValueError, "negative"),
    ("(thread/sleep -1)", RtfsValueError, "from 0 to a day"),
])
def test_builtin_errors(text, error, message):
    with pytest.raises(error, match=re.escape(message)):
        evaluate(text)


def test_arity_comes_from_the_signature():
    assert (BUILTINS["get"].min_args, BUILTINS["get"].max_args) == (2, 3)
    assert (BUILTINS["+"].min_args, BUILTINS["+"].max_args) == (0, None)
    assert BUILTINS["map"].needs_vm and BUILTINS["map"].min_args == 2


def test_purity_marks_what_touches_the_outside():
    impure = {name for name, fn in BUILTINS.items() if not fn.pure}
    assert impure == {"println", "print", "thread/sleep"}
