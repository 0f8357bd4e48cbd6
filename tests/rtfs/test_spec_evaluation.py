"""Chapters 04 (evaluation and runtime) and 15 (error handling): scoping, closures, the host
boundary, iteration forms, and errors caught by family."""

from __future__ import annotations

import io

import pytest

from rtfs.errors import (
    ArityError,
    CapabilityError,
    DivisionByZeroError,
    MatchError,
    RtfsRuntimeError,
    RtfsSyntaxError,
    RtfsTypeError,
    UserError,
)
from rtfs.router import LocalRouter
from rtfs.vm import VM
from tests.rtfs.conftest import evaluate, show


@pytest.mark.parametrize("text, expected", [
    # applicative order, left to right; atoms evaluate to themselves
    ("(- (* 4 5) (+ 1 2))", "17"), (":self", ":self"), ('"text"', '"text"'),
    ("[(+ 1 1) {:k (* 2 2)} #{(- 3 3)}]", "[2 {:k 4} #{0}]"),
    # lexical scope: let shadows a global without changing it
    ("(do (def g 1) [(let [g 2 h (+ g 1)] [g h]) g])", "[[2 3] 1]"),
    # functions capture their definition environment, globals are looked up when called
    ("(do (def k 3) (defn mk [f] (fn [x] (* x f k))) (def triple (mk 1)) (triple 5))", "15"),
    ("(do (defn later [] (helper)) (defn helper [] :found) (later))", ":found"),
    ("(let [counter (fn [n] (fn [] n))] ((counter 4)))", "4"),
    ("((fn fact [n] (if (< n 2) 1 (* n (fact (dec n))))) 10)", "3628800"),
    # if/do/let as specified
    ("(if false :yes :no)", ":no"), ("(let [a 1 b (inc a)] (+ a b))", "3"),
    ("(do (def log []) :done)", ":done"),
])
def test_evaluation_rules(text, expected):
    assert show(text) == expected


def test_effects_go_through_call_to_the_host():
    calls = []
    router = LocalRouter({"ccos.io/println": lambda *args: calls.append(args) or None,
                          "ccos.state.kv/get": lambda key: {"k": 7}.get(key)})
    vm = VM(router=router, out=io.StringIO())
    program = '(do (call :ccos.io/println "first") (call "ccos.state.kv/get" "k"))'
    assert evaluate(program, vm) == 7
    assert calls == [("first",)]
    with pytest.raises(CapabilityError):
        evaluate("(call :ccos.unknown/thing 1)", vm)


@pytest.mark.parametrize("text, expected", [
    ("(loop [i 0 acc []] (if (< i 4) (recur (inc i) (conj acc (* i i))) acc))", "[0 1 4 9]"),
    ("(loop [n 100000 acc 0] (if (zero? n) acc (recur (dec n) (+ acc 1))))", "100000"),
    ("(do (defn count-down [n] (if (pos? n) (recur (dec n)) :liftoff)) (count-down 50000))",
     ":liftoff"),
    (("(do (defn f [x & xs] (if (seq? xs) x (if xs (recur (first xs) (next xs)) x))) "
     "(f 1 2 3))"), "3"),
    ("(loop [x 5] (cond (> x 10) :big (odd? x) (recur (* x 2)) :else (recur (+ x 1))))",
     ":big"),
    ("(loop [x 3] (case x 0 :zero (recur (dec x))))", ":zero"),
    ("(loop [xs [1 2]] (if-let [[h & t] xs] (recur t) :empty))", ":empty"),
    ("(loop [n 3] (when-let [m (if (pos? n) n nil)] (recur (dec m))))", "nil"),
    ("(loop [n 0] (match n 3 :three _ (recur (inc n))))", ":three"),
    ("(loop [n 0] (let [m (inc n)] (if (< m 5) (recur m) m)))", "5"),
    ("(loop [n 0] (or (and (> n 2) n) (recur (inc n))))", "3"),
    ("(loop [[h & t] [1 2 3] out []] (if h (recur t (conj out (* 2 h))) out))", "[2 4 6]"),
    ("(for [x [1 2 3]] (* x x))", "[1 4 9]"),
    ("(for [x [1 2] y [:a :b]] [x y])", "[[1 :a] [1 :b] [2 :a] [2 :b]]"),
    ("(for [x (range 10) :when (even? x) :let [y (* x x)] :while (< y 40)] y)",
     "[0 4 16 36]"),
    ("(for [x [] y [1]] y)", "[]"), ("(for [x nil] x)", "[]"),
    ("(let [out (dotimes [i 3] i)] out)", "nil"),
    ("(case :b :a 1 :b 2 3)", "2"), ("(case 9 (1 2 3) :small (8 9) :big :other)", ":big"),
    ("(case [1 2] [1 2] :pair :other)", ":pair"), ("(case \"z\" \"a\" 1 :default)", ":default"),
    ("(if-let [v (:k {:k 0})] [:got v] :none)", "[:got 0]"),
    ("(if-let [v (:k {})] [:got v] :none)", ":none"),
    ("(when-let [[a b] [1 2]] (+ a b))", "3"), ("(when-let [v nil] :never)", "nil"),
])
def test_iteration_and_conditional_forms(text, expected):
    assert show(text) == expected


def test_dotimes_runs_its_body_for_effects():
    out = io.StringIO()
    evaluate("(dotimes [i 3] (print i))", VM(out=out))
    assert out.getvalue() == "012"


@pytest.mark.parametrize("text, error, message", [
    ("(loop [i 0] (+ 1 (recur (inc i))))", RtfsSyntaxError, "tail position"),
    ("(do (defn f [x] (* 2 (recur x))) 1)", RtfsSyntaxError, "tail position"),
    ("(loop [a 1 b 2] (recur 1))", RtfsSyntaxError, "recur takes 2 value(s)"),
    ("(recur)", RtfsSyntaxError, "only allowed"),
    ("(loop [i 0] (try (recur 1) (catch Exception e 0)))", RtfsSyntaxError, "tail position"),
    ("(loop [i 0] (fn [] (recur 1)))", RtfsSyntaxError, "recur takes 0"),
    ("(case 5 1 :one)", MatchError, "accepts 5"), ("(dotimes [i :x] i)", RtfsTypeError,
                                                  "integer count"),
    ("(for [x 5] x)", RtfsTypeError, "for expects a collection"),
    ("(for [x [1] :when] x)", RtfsSyntaxError, ":when follows a binding"),
    ("(if-let [a 1 b 2] a)", RtfsSyntaxError, "one [pattern expression]"),
])
def test_iteration_errors(text, error, message):
    with pytest.raises(error) as info:
        evaluate(text)
    assert message in info.value.message


@pytest.mark.parametrize("text, expected", [
    # families of chapter 15: RuntimeError takes evaluation errors, not host or validation
    ("(try (/ 1 0) (catch RuntimeError e :runtime))", ":runtime"),
    ("(try (undefined-fn) (catch RuntimeError e :runtime))", ":runtime"),
    ("(try ((fn [a] a)) (catch RuntimeError e (:type e)))", '"ArityError"'),
    (("(try (call :no.such/capability) (catch RuntimeError e :runtime) (catch HostError e "
     ":host))"), ":host"),
    (("(try ((fn [x :int] x) :k) (catch RuntimeError e :runtime) (catch ValidationError e "
     ":validation))"), ":validation"),
    ("(try (throw {:x 1}) (catch RuntimeError e :runtime) (catch Exception e :any))", ":any"),
    # keyword kinds, and a catch-all of each spelling
    ("(try (/ 1 0) (catch :division-by-zero e :div0))", ":div0"),
    ("(try (mod 5 0) (catch :arithmetic-error e :arith))", ":arith"),
    ("(try (nth [] 3) (catch :index-error e :idx))", ":idx"),
    ("(try (undefined-x) (catch :unbound-symbol e :u))", ":u"),
    ("(try (undefined-x) (catch :undefined-symbol e :u))", ":u"),
    ("(try (/ 1 0) (catch :error e :any))", ":any"), ("(try (/ 1 0) (catch Error e :any))",
                                                      ":any"),
    ("(try (/ 1 0) (catch Throwable e :any))", ":any"),
    # clauses are tried in order; the first that matches wins; none: the error goes on
    (("(try (/ 1 0) (catch TypeError e :t) (catch ArithmeticError e :a) (catch Exception e "
     ":x))"), ":a"),
    ("(try (try (/ 1 0) (catch TypeError e :inner)) (catch Exception e :outer))", ":outer"),
    # the error value: kind, message, position, thrown value, data
    ("(try (/ 1 0) (catch Exception e [(:type e) (:message e) (:line e)]))",
     '["ArithmeticError" "division by zero" 1]'),
    ("(try (throw [:payload]) (catch Exception e (:value e)))", "[:payload]"),
    ('(try (error "bad input" {:field :age}) (catch RuntimeError e [(:message e) (:data e)]))',
     '["bad input" {:field :age}]'),
    ('(try (throw (RuntimeError. "boom")) (catch RuntimeError e (:message e)))', '"boom"'),
    ('(try (throw (HostError. "down")) (catch HostError e (:type e)))', '"HostError"'),
    ('(try (throw (ValidationError. "no")) (catch TypeError e (:type e)))', '"ValidationError"'),
    # rethrow keeps the error; with-context adds a :context to the caught value
    ("(try (try (/ 1 0) (catch Exception e (throw e))) (catch ArithmeticError e :again))",
     ":again"),
    ("(try (/ 1 0) (catch Exception e (:context (with-context e {:op :divide}))))",
     "{:op :divide}"),
    (("(try (try (/ 1 0) (catch Exception e (throw (with-context e {:step 2}))))"
     " (catch ArithmeticError e [(:type e) (:context e)]))"), '["ArithmeticError" {:step 2}]'),
    # a catch without a name, and a destructuring one
    ("(try (/ 1 0) (catch ArithmeticError :handled))", ":handled"),
    ('(try (error "m") (catch RuntimeError {:keys [message]} message))', '"m"'),
    # finally runs on success and on error, and does not change the value
    ("(do (def trail []) (try 1 (finally (def trail (conj trail :ran)))) trail)", "[:ran]"),
    (("(do (def trail []) (try (try (/ 1 0) (finally (def trail (conj trail :f))))"
     " (catch Exception e trail)))"), "[:f]"),
    ("(try :value (catch Exception e :never) (finally :ignored))", ":value"),
    # recovery patterns of the chapter, written with loop/recur and fallbacks
    (("(do (defn flaky [n] (if (< n 3) (throw {:attempt n}) :success))"
     " (loop [n 0] (let [r (try (flaky n) (catch Exception e :failed))]"
     " (if (= r :failed) (recur (inc n)) [r n]))))"), "[:success 3]"),
    (("(do (defn read-config [] (call :fs.read \"/config\"))"
     " (defn safe-config [] (try (read-config) (catch HostError e {:default true})))"
     " (safe-config))"), "{:default true}"),
])
def test_error_handling(text, expected):
    assert show(text) == expected


@pytest.mark.parametrize("text, error, position", [
    ("(do\n  (error \"stop\"))", RtfsRuntimeError, (2, 3)),
    ("(throw :x)", UserError, (1, 1)),
    ("(do (defn f [] (/ 1 0))\n(f))", DivisionByZeroError, (1, 16)),
    ("(try (/ 1 0) (catch TypeError e :no))", DivisionByZeroError, (1, 6)),
    ("((fn [a b] a) 1)", ArityError, (1, 1)),
])
def test_uncaught_errors_propagate_with_their_position(text, error, position):
    with pytest.raises(error) as info:
        evaluate(text)
    assert (info.value.line, info.value.col) == position
