"""Special forms, scoping and calls, through the whole pipeline (read, compile, run)."""

from __future__ import annotations

import pytest

from rtfs.errors import (
    ArityError,
    MatchError,
    RtfsRecursionError,
    RtfsSyntaxError,
    RtfsTypeError,
    UnboundSymbolError,
    UserError,
)
from rtfs.vm import VM
from tests.rtfs.conftest import evaluate, show


@pytest.mark.parametrize("text, expected", [
    ("(do)", "nil"), ("(do 1 2 3)", "3"), ("(if false 1)", "nil"), ("(if 0 :t :f)", ":t"),
    ("(if [] :t :f)", ":t"), ("(and)", "true"), ("(and 1 nil 2)", "nil"), ("(or nil 3)", "3"),
    ("(when true 1 2)", "2"), ("(when-not true 1)", "nil"), ("(cond false 1 nil 2 :else 3)", "3"),
    ("(-> 5 (- 1) (* 2))", "8"), ("(->> 5 (- 1) (* 2))", "-8"), ("'(a b)", "(a b)"),
    ("(quote [x])", "[x]"),
    # let: sequential, shadowing, destructuring
    ("(let [x 1 y (+ x 1)] [x y])", "[1 2]"), ("(let [x 1 x (+ x 10)] x)", "11"),
    ("(let [x 1] (let [y x x 2] [x y]))", "[2 1]"),
    ("(let [[a [b c] & more :as all] [1 [2 3] 4 5]] [a b c more all])",
     "[1 2 3 [4 5] [1 [2 3] 4 5]]"),
    ("(let [[a b] [1]] [a b])", "[1 nil]"), ("(let [[a & r] [1]] r)", "nil"),
    ("(let [{:keys [a b] :or {b 7} :as m} {:a 1}] [a b m])", "[1 7 {:a 1}]"),
    ("(let [{x :x [p q] :pair} {:x 1 :pair [2 3]}] [x p q])", "[1 2 3]"),
    ("(let [x:int 4 s:string \"a\"] [x s])", '[4 "a"]'),
    # functions and closures
    ("((fn [] 42))", "42"), ("((fn [x] :int x) 1)", "1"), ("((fn [] :k))", ":k"),
    ("((fn f [n] (if (= n 0) :done (f (- n 1)))) 50)", ":done"),
    ("(let [a 1 f (fn [] a) a 2] [(f) a])", "[1 2]"),
    ("(let [make (fn [n] (fn [x] (+ x n))) add2 (make 2)] (add2 5))", "7"),
    ("(let [counter (fn [start] (let [c start] (fn [] c)))] ((counter 9)))", "9"),
    ("((fn outer [a] ((fn [b] ((fn [c] (+ a b c)) 3)) 2)) 1)", "6"),
    ("(do (def x 5) (defn add-x [y] (+ x y)) (add-x 1))", "6"),
    ("(do (defn f \"doc\" [x] (* 2 x)) (f 4))", "8"),
    ("(do (defn g [& xs] xs) [(g) (g 1 2)])", "[nil [1 2]]"),
    ("(map (fn [[k v]] [k (* v 2)]) {:a 1 :b 2})", "[[:a 2] [:b 4]]"),
    ("(let [m {:a 1}] [(:a m) (m :a) (:z m :dflt) ([10 20] 1) (#{3} 3)])", "[1 1 :dflt 20 3]"),
    # match
    ("(match 2 1 :one 2 :two _ :many)", ":two"),
    ("(match [1 [2 3]] [a [b c]] (+ a b c))", "6"),
    ("(match [1 2 3] [x & rest] rest)", "[2 3]"),
    ("(match [1 2] [a] :one [a b c] :three _ :other)", ":other"),
    ("(match {:op :add :args [1 2]} {:op :sub} :sub {:op :add :args [a b]} (+ a b))", "3"),
    ("(match 7 n when (> n 5) :big n :small)", ":big"),
    ("(match 3 n when (> n 5) :big n :small)", ":small"),
    ("(match nil nil :nil _ :other)", ":nil"),
    # try / catch / finally / throw
    ("(try (/ 1 0) (catch ArithmeticError e (:type e)))", '"ArithmeticError"'),
    ("(try (/ 1 0) (catch TypeError e :type) (catch Exception e :any))", ":any"),
    ("(try (throw {:code 7}) (catch UserError e (:code (:value e))))", "7"),
    ("(try 1 (finally 2))", "1"),
    ("(try (+ 1 1) (catch Exception e :never))", "2"),
    ("(try (try (/ 1 0) (finally (def cleaned true))) (catch Exception e cleaned))", "true"),
    ("(try (try (/ 1 0) (catch TypeError e :inner)) (catch Exception e :outer))", ":outer"),
    ("(do (defn risky [] (/ 1 0)) (try (risky) (catch Exception e (:line e))))", "1"),
    # parallel
    ("(parallel [a 1] [b (+ 1 1)] [c (str \"x\")])", '[1 2 "x"]'),
    ("(parallel)", "[]"),
    ("(parallel [a (try (/ 1 0) (catch Exception e :err))] [b 2])", "[:err 2]"),
])
def test_evaluates(text, expected):
    assert show(text) == expected


def test_local_functions_recurse_and_recurse_mutually():
    fib = "(let [fib (fn [n] (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))] (fib 15))"
    assert show(fib) == "610"
    text = """(let [ev? (fn [n] (if (= n 0) true (od? (- n 1))))
                    od? (fn [n] (if (= n 0) false (ev? (- n 1))))]
               [(ev? 10) (od? 7)])"""
    assert show(text) == "[true true]"


def test_definitions_persist_across_programs_in_one_vm():
    vm = VM()
    evaluate("(defn twice [x] (* 2 x))", vm)
    assert evaluate("(twice 21)", vm) == 42


@pytest.mark.parametrize("text, error, message, position", [
    ("(+ 1\n   undefined-thing)", UnboundSymbolError, "undefined-thing", (2, 4)),
    ("((fn [x] x) 1 2)", ArityError, "takes 1 argument(s), got 2", (1, 1)),
    ("(do\n  (inc 1 2))", ArityError, "inc takes 1", (2, 3)),
    ('(+ 1 "a")', RtfsTypeError, "+ expects numbers", (1, 1)),
    ("(1 (+ 1 1))", RtfsTypeError, "not a function", (1, 1)),
    ("(match 5 1 :one)", MatchError, "no match clause accepts 5", (1, 1)),
    ("(throw :boom)", UserError, "thrown: :boom", (1, 1)),
    ("(defn f [x x] x)", RtfsSyntaxError, "appears twice", (1, 9)),
    ("(let [x] x)", RtfsSyntaxError, "pattern/value pairs", (1, 6)),
    ("(if)", RtfsSyntaxError, "if takes", (1, 1)),
    ("(call 5)", RtfsSyntaxError, "capability id", (1, 1)),
    ("(let [x 1] x:int)", RtfsSyntaxError, "type annotation", (1, 12)),
    ("(try 1 (catch 5 e 1))", RtfsSyntaxError, "error kind", (1, 15)),
])
def test_errors_name_what_and_where(text, error, message, position):
    with pytest.raises(error) as info:
        evaluate(text)
    assert message in info.value.message
    assert (info.value.line, info.value.col) == position


def test_error_inside_a_called_function_points_at_the_failing_form():
    text = "(defn f [x]\n  (/ x 0))\n(f 1)"
    with pytest.raises(Exception) as info:
        evaluate(text)
    assert (info.value.line, info.value.col) == (2, 3)


def test_deep_recursion_is_a_clear_rtfs_error():
    with pytest.raises(RtfsRecursionError, match="nested deeper than"):
        evaluate("(defn down [n] (+ 1 (down (+ n 1)))) (down 0)")
    # through higher-order functions the host stack runs out first; still an RTFS error
    with pytest.raises(RtfsRecursionError):
        evaluate("(defn deep [n] (first (map (fn [x] (deep x)) [n]))) (deep 0)")


def test_recursion_within_the_limit_works_and_the_vm_stays_usable():
    vm = VM(max_depth=500)
    assert evaluate("(defn count-down [n] (if (= n 0) :ok (count-down (- n 1)))) (count-down 400)",
                    vm) == evaluate(":ok")
    with pytest.raises(RtfsRecursionError):
        evaluate("(count-down 1000)", vm)
    assert evaluate("(count-down 10)", vm) == evaluate(":ok")


def test_catch_all_does_not_swallow_runaway_recursion():
    with pytest.raises(RtfsRecursionError):
        evaluate("(defn r [n] (try (r (+ n 1)) (catch Exception e :caught))) (r 0)",
                 VM(max_depth=100))


def test_println_goes_to_the_vm_output():
    import io

    out = io.StringIO()
    assert evaluate('(do (println "a" 1 [2 "s"]) (print "b") :v)', VM(out=out)) == evaluate(":v")
    assert out.getvalue() == 'a 1 [2 "s"]\nb'
