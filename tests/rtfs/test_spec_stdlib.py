"""Chapter 10: every function the standard library chapter lists, on values of our own."""

from __future__ import annotations

import pytest

from rtfs.errors import (
    ArityError,
    DivisionByZeroError,
    RtfsArithmeticError,
    RtfsIndexError,
    RtfsTypeError,
    RtfsValueError,
)
from rtfs.stdlib import BUILTINS
from tests.rtfs.conftest import evaluate, show

LISTED = [
    "+", "-", "*", "/", "mod", "inc", "dec", "max", "min", "abs", "sqrt", "pow", "factorial",
    "even?", "odd?", "zero?", "pos?", "neg?", "=", "!=", ">", "<", ">=", "<=", "not", "str",
    "string-length", "substring", "string-contains?", "starts-with?", "string-join",
    "string-upper", "string-lower", "string-trim", "re-matches", "re-find", "re-seq",
    "parse-int", "parse-float", "int", "float", "vector", "hash-map", "map", "map-indexed",
    "filter", "reduce", "apply", "sort", "sort-by", "distinct", "frequencies", "group-by",
    "contains?", "keys", "vals", "get", "get-in", "assoc", "dissoc", "update", "remove",
    "cons", "conj", "concat", "first", "rest", "last", "nth", "count", "empty?", "range",
    "numbers", "take", "drop", "reverse", "merge", "find", "nil?", "bool?", "int?", "float?",
    "number?", "string?", "fn?", "symbol?", "keyword?", "vector?", "map?", "type-name",
    "parse-json", "serialize-json", "length", "upper", "lower", "trim",
]


def test_every_function_the_chapter_lists_exists():
    assert [name for name in LISTED if name not in BUILTINS] == []


@pytest.mark.parametrize("text, expected", [
    # arithmetic
    ("(+ 1 2 3)", "6"), ("(+ 1 2.5)", "3.5"), ("(- 10 4 1)", "5"), ("(- 3)", "-3"),
    ("(* 2 3 4)", "24"), ("(/ 12 4)", "3"), ("(/ 7 2)", "3.5"), ("(mod 10 3)", "1"),
    ("(mod -10 3)", "2"), ("(inc 41)", "42"), ("(dec 0.5)", "-0.5"), ("(max 3 9 2)", "9"),
    ("(min 3 9 2)", "2"), ("(abs -4.5)", "4.5"), ("(sqrt 25)", "5.0"), ("(pow 3 4)", "81"),
    ("(pow 2 0.5)", "1.4142135623730951"), ("(pow 2 -1)", "0.5"), ("(factorial 6)", "720"),
    ("(factorial 0)", "1"), ("[(even? 4) (odd? 4) (zero? 0.0) (pos? -1) (neg? -1)]",
                             "[true false true false true]"),
    # comparison and logic
    ("(= 2 2.0)", "true"), ("(= [1 {:a #{2}}] [1 {:a #{2}}])", "true"), ("(!= :a :b)", "true"),
    ("(!= 1 1)", "false"), ("(> 3 2)", "true"), ("(< 3 2)", "false"), ("(>= 2 2)", "true"),
    ("(<= 1 2 2 3)", "true"), ("(not false)", "true"), ("(not [])", "false"),
    ("(and true 5)", "5"), ("(or nil false)", "false"),
    # strings
    ('(str "x=" 1 " " :k)', '"x=1 :k"'), ('(string-length "héllo")', "5"),
    ('(length "four")', "4"), ('(length [1 2])', "2"), ('(substring "abcdef" 2 4)', '"cd"'),
    ('(string-contains? "needle in hay" "in h")', "true"), ('(starts-with? "prefix" "pre")',
                                                              "true"),
    ('(string-join "/" ["a" "b" "c"])', '"a/b/c"'), ('(string-upper "MiXed")', '"MIXED"'),
    ('(string-lower "MiXed")', '"mixed"'), ('(string-trim "  pad ")', '"pad"'),
    ('(upper "a")', '"A"'), ('(lower "B")', '"b"'), ('(trim " c ")', '"c"'),
    ('(re-matches "[a-z]+" "abc")', '"abc"'), ('(re-matches "[a-z]+" "abc1")', "nil"),
    ('(re-matches "(\\\\w+)@(\\\\w+)" "me@host")', '["me@host" "me" "host"]'),
    ('(re-find "\\\\d+" "ab 12 cd 34")', '"12"'), ('(re-find "x" "abc")', "nil"),
    ('(re-seq "[aeiou]" "education")', '["e" "u" "a" "i" "o"]'),
    ('(parse-int "-42")', "-42"), ('(parse-int "4.2")', "nil"), ('(parse-int "z" 36)', "35"),
    ('(parse-float "2.5e2")', "250.0"), ('(parse-float "abc")', "nil"), ("(int 7.9)", "7"),
    ("(int -7.9)", "-7"), ('(int "12")', "12"), ("(int true)", "1"), ("(float 3)", "3.0"),
    ('(float "0.5")', "0.5"),
    # collections
    ("(vector 1 :a)", "[1 :a]"), ("(hash-map :a 1 :b 2)", "{:a 1 :b 2}"),
    ("(map inc [1 2])", "[2 3]"), ("(map + [1 2] [10 20])", "[11 22]"),
    ("(map-indexed (fn [i x] (* i x)) [5 5 5])", "[0 5 10]"),
    ("(filter even? (range 6))", "[0 2 4]"), ("(reduce * [1 2 3 4])", "24"),
    ("(reduce conj [] '(1 2))", "[1 2]"), ("(apply max [3 8 1])", "8"),
    ("(apply str \"a\" [\"b\" \"c\"])", '"abc"'), ("(sort [3 1 2])", "[1 2 3]"),
    ("(sort > [3 1 2])", "[3 2 1]"), ("(sort-by :n [{:n 2} {:n 1}])", "[{:n 1} {:n 2}]"),
    ("(distinct [1 2 1 3 2])", "[1 2 3]"), ("(frequencies \"abab\")", '{"a" 2 "b" 2}'),
    ("(group-by count [\"a\" \"bb\" \"c\"])", '{1 ["a" "c"] 2 ["bb"]}'),
    ("(contains? {:a nil} :a)", "true"), ("(contains? #{1} 2)", "false"),
    ('(contains? "haystack" "st")', "true"), ("(keys {:a 1 :b 2})", "[:a :b]"),
    ("(vals {:a 1 :b 2})", "[1 2]"), ("(get {:a 1} :b :none)", ":none"),
    ("(get-in {:a [{:b :deep}]} [:a 0 :b])", ":deep"), ("(assoc {} :a 1 :b 2)", "{:a 1 :b 2}"),
    ("(assoc [1 2] 0 :x)", "[:x 2]"), ("(dissoc {:a 1 :b 2 :c 3} :a :c)", "{:b 2}"),
    ("(update {:n 1} :n + 10)", "{:n 11}"), ("(remove nil? [1 nil 2])", "[1 2]"),
    ("(cons 0 [1 2])", "[0 1 2]"), ("(conj [1] 2 3)", "[1 2 3]"), ("(conj #{1} 2)", "#{1 2}"),
    ("(conj {:a 1} [:b 2])", "{:a 1 :b 2}"), ("(concat [1] '(2) [3])", "[1 2 3]"),
    ("(first [])", "nil"), ("(rest [1])", "[]"), ("(last '(1 2 3))", "3"), ("(nth [4 5] 1)", "5"),
    ("(count {:a 1})", "1"), ("(empty? {})", "true"), ("(range 4)", "[0 1 2 3]"),
    ("(range 2 8 2)", "[2 4 6]"), ("(numbers 3 6)", "[3 4 5 6]"), ("(numbers 2 1)", "[]"),
    ("(take 2 (range 10))", "[0 1]"), ("(drop 8 (range 10))", "[8 9]"),
    ("(reverse \"abc\")", '["c" "b" "a"]'), ("(merge {:a 1} {:a 2 :b 3})", "{:a 2 :b 3}"),
    ("(find {:a 1} :a)", "[:a 1]"), ("(find {:a 1} :z)", "nil"),
    # type predicates and type-name
    ("[(nil? nil) (bool? false) (int? 1) (float? 1.0) (number? 1.0) (string? \"\")]",
     "[true true true true true true]"),
    ("[(fn? +) (fn? (fn [] 1)) (symbol? 'x) (keyword? :x) (vector? []) (map? {})]",
     "[true true true true true true]"),
    ("[(int? 1.0) (vector? '()) (map? []) (fn? :k)]", "[false false false false]"),
    ("(map type-name [1 2.0 \"s\" :k 's nil true [] {} #{}])",
     '[":int" ":float" ":string" ":keyword" ":symbol" ":nil" ":bool" ":vector" ":map" ":set"]'),
    # JSON
    ('(parse-json "{\\"name\\": \\"Ada\\", \\"tags\\": [1, 2.5, null, true]}")',
     '{:name "Ada" :tags [1 2.5 nil true]}'),
    ('(serialize-json {:a [1 nil] "b" :k})', '"{\\"a\\": [1, null], \\"b\\": \\"k\\"}"'),
    ('(parse-json (serialize-json {:x {:y [1 2]}}))', "{:x {:y [1 2]}}"),
])
def test_standard_library(text, expected):
    assert show(text) == expected


@pytest.mark.parametrize("text, error, message", [
    ("(/ 5 0)", DivisionByZeroError, "division by zero"),
    ("(mod 5 0)", DivisionByZeroError, "division by zero"),
    ("(sqrt -1)", RtfsArithmeticError, "negative"),
    ("(pow -8 0.5)", RtfsArithmeticError, "not a real number"),
    ('(+ 1 "2")', RtfsTypeError, "+ expects numbers"), ("(inc nil)", RtfsTypeError, "inc"),
    ("(factorial -1)", RtfsValueError, "negative"), ("(factorial 1.5)", RtfsTypeError,
                                                     "integer"),
    ('(substring "abc" 2 1)', RtfsValueError, "substring range"),
    ("(string-length 5)", RtfsTypeError, "expects a string"),
    ('(re-find "(" "x")', RtfsValueError, "invalid regular expression"),
    ('(parse-int "1" 99)', RtfsValueError, "radix"), ('(int "x")', RtfsValueError, "not an"),
    ("(int ##NaN)", RtfsValueError, "finite"), ("(nth [1] 5)", RtfsIndexError, "outside"),
    ("(first 5)", RtfsTypeError, "collection"), ("(keys [1])", RtfsTypeError, "expects a map"),
    ("(sort [1 :a])", RtfsTypeError, "cannot compare"), ("(range 0 5 0)", RtfsValueError,
                                                          "step of 0"),
    ('(parse-json "{bad")', RtfsValueError, "not JSON"),
    ("(serialize-json {:f inc})", RtfsTypeError, "no JSON form"),
    ("(serialize-json ##NaN)", RtfsValueError, "no JSON form"),
    ("(find 5 1)", RtfsTypeError, "map or a vector"), ("(!=)", ArityError, "!= takes"),
    ("(string-join \",\" [1] [2])", ArityError, "takes 1 to 2"),
])
def test_standard_library_errors(text, error, message):
    with pytest.raises(error) as info:
        evaluate(text)
    assert message in info.value.message
