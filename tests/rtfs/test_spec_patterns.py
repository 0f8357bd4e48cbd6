"""Chapter 05: pattern matching and destructuring, in every position that takes a pattern
(`let`, `fn`/`defn` parameters, `loop`, `for`, `catch`, `match`)."""

from __future__ import annotations

import pytest

from rtfs.errors import ArityError, MatchError, RtfsSyntaxError, RtfsTypeError
from tests.rtfs.conftest import evaluate, show


@pytest.mark.parametrize("text, expected", [
    # vector destructuring: by position, extras ignored, missing ones nil, & collects the rest
    ("(let [[p q r] [7 8 9]] (* p q r))", "504"), ("(let [[p q] [7 8 9]] [p q])", "[7 8]"),
    ("(let [[p q r s] [7]] [p q r s])", "[7 nil nil nil]"),
    ("(let [[h & t] [5 6 7]] [h t])", "[5 [6 7]]"), ("(let [[h & t] [5]] [h t])", "[5 nil]"),
    ("(let [[a b & more] (range 5)] [a b more])", "[0 1 [2 3 4]]"),
    ("(let [[& everything] [:x :y]] everything)", "[:x :y]"),
    ("(let [[a b] nil] [a b])", "[nil nil]"), ("(let [[a b] '(3 4)] (+ a b))", "7"),
    # nested, with rest at several levels, and :as
    ("(let [[[a b] [c d]] [[1 2] [3 4]]] (- (+ a d) (+ b c)))", "0"),
    ("(let [[[h & t] x & xs] [[:a :b :c] 1 2 3]] [h t x xs])", "[:a [:b :c] 1 [2 3]]"),
    ("(let [[a & r :as whole] [1 2 3]] [a r whole])", "[1 [2 3] [1 2 3]]"),
    # map destructuring: :keys, explicit keys in the specification's order, mixed, :as, :or
    ("(let [{:keys [w h]} {:w 3 :h 4 :d 5}] (* w h))", "12"),
    ("(let [{:keys [here gone]} {:here 1}] [here gone])", "[1 nil]"),
    ('(let [{"host" h "port" p} {"host" "db" "port" 5432}] [h p])', '["db" 5432]'),
    ("(let [{7 seven :k k} {7 :lucky :k :kw}] [seven k])", "[:lucky :kw]"),
    ('(let [{:keys [a] "b" b :c c} {:a 1 "b" 2 :c 3}] [a b c])', "[1 2 3]"),
    ("(let [{:keys [x] :as all} {:x 1 :y 2}] [x all])", "[1 {:x 1 :y 2}]"),
    ("(let [{:keys [x y] :or {y 10}} {:x 1}] [x y])", "[1 10]"),
    ("(let [{n :name} {:name \"clojure order\"}] n)", '"clojure order"'),
    ("(let [{:strs [user]} {\"user\" :u}] user)", ":u"),
    ("(let [{:a a & others} {:a 1 :b 2 :c 3}] [a others])", "[1 {:b 2 :c 3}]"),
    ("(let [{:a a & others} {:a 1}] others)", "nil"),
    # nested maps and vectors inside maps
    ("(let [{:keys [user]} {:user {:name \"Eve\"}}] (:name user))", '"Eve"'),
    ("(let [{[x y] :point} {:point [3 4]}] (+ x y))", "7"),
    ("(let [{:point [x y]} {:point [3 4]}] (* x y))", "12"),
    ("(let [{:keys [cfg]} {:cfg {:retries 3}}] (-> cfg :retries inc))", "4"),
    # wildcards
    ("(let [[_ mid _] [:l :m :r]] mid)", ":m"), ("(let [[a _ _ d] [1 2 3 4]] [a d])", "[1 4]"),
])
def test_let_destructuring(text, expected):
    assert show(text) == expected


@pytest.mark.parametrize("text, expected", [
    (("(do (defn dist [[x1 y1] [x2 y2]] (+ (abs (- x2 x1)) (abs (- y2 y1)))) "
     "(dist [0 0] [3 4]))"), "7"),
    (("(do (defn full-name {:keys [first last]} (str first \" \" last))"
     " (full-name {:first \"Ada\" :last \"Lovelace\"}))"), '"Ada Lovelace"'),
    ("(do (defn tag [id {:keys [label]}] [id label]) (tag 9 {:label :x}))", "[9 :x]"),
    ("(map (fn [[k v]] (str (name k) \"=\" v)) {:a 1 :b 2})", '["a=1" "b=2"]'),
    ("(filter (fn [{:keys [ok]}] ok) [{:ok true :n 1} {:ok false :n 2}])", "[{:ok true :n 1}]"),
    ("(do (defn prefix-all [p & xs] (map (fn [x] [p x]) xs)) (prefix-all :p 1 2))",
     "[[:p 1] [:p 2]]"),
    (("(do (defn sum-tree [[v & kids]] (+ v (reduce + 0 (map sum-tree kids))))"
     " (sum-tree [1 [2 [3]] [4]]))"), "10"),
    (("(do (defn div [[n d]] (if (and d (not= d 0)) (/ n d) :undefined)) [(div [8 2]) "
     "(div [8 0]) (div [8])])"), "[4 :undefined :undefined]"),
    ("(loop [[x & xs] [1 2 3] acc 0] (if x (recur xs (+ acc x)) acc))", "6"),
    ("(for [[k v] {:a 1 :b 2} :when (odd? v)] k)", "[:a]"),
    ("(try (throw {:code 42}) (catch Exception {:keys [value]} (:code value)))", "42"),
])
def test_destructuring_in_parameters_loops_and_catch(text, expected):
    assert show(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("(match [1 [2 3]] [a [b c]] (+ a b c))", "6"),
    ("(match [1 2 3 4] [a & more] more)", "[2 3 4]"),
    ("(match [1 2] [a] :one [a b c] :three [a b] :two)", ":two"),
    ("(match [1 2 3] [x & r :as all] [x r all])", "[1 [2 3] [1 2 3]]"),
    ("(match {:t :circle :r 2} {:t :square :s s} (* s s) {:t :circle :r r} (* 3 r r))", "12"),
    ("(match {:a 1} {:b b} :has-b {:a a} :has-a)", ":has-a"),
    ("(match {:a 1 :b 2} {:keys [a b]} (+ a b))", "3"),
    ("(match {:a 1 :b 2 :c 3} {:a 1 & rest} rest)", "{:b 2 :c 3}"),
    ("(match {:p [1 2]} {:p [x y] :as m} [x y (count m)])", "[1 2 1]"),
    ("(match 4 (:string s) :s (:int n) (* n n))", "16"),
    ("(match 4.5 (:int n) :int (:float f) :float)", ":float"),
    ("(match nil (:nil) :nothing _ :something)", ":nothing"),
    ("(match [1 2] ([:vector :int] v) (count v) _ :no)", "2"),
    ("(match [1 \"x\"] ([:vector :int] v) :ints ([:tuple :int :string] [n s]) s)", '"x"'),
    ("(match [5 6] (:as whole [a b]) [whole a b])", "[[5 6] 5 6]"),
    ("(match 7 n when (odd? n) :odd n :even)", ":odd"),
    ("(match [3 4] [a b] when (> a b) :desc [a b] :asc)", ":asc"),
    ("(match :b :a 1 :b 2 _ 3)", "2"), ('(match "x" "x" :yes _ :no)', ":yes"),
    ("(match '(1 2) [a b] (+ a b))", "3"), ("(match [1 2] [1 2] :exact _ :no)", ":exact"),
])
def test_match(text, expected):
    assert show(text) == expected


@pytest.mark.parametrize("text, error, message, position", [
    ('(let [[a b] "not a vector"] a)', RtfsTypeError, "cannot destructure a string", (1, 7)),
    ("(let [[a b]\n      42] a)", RtfsTypeError, "cannot destructure a int", (1, 7)),
    ("(let [[:invalid] [1 2 3]] 1)", RtfsSyntaxError, "invalid destructuring pattern", (1, 8)),
    ("(let [{:keys [1]} {}] 1)", RtfsSyntaxError, ":keys and :strs take a vector of names",
     (1, 14)),
    ("(defn bad [& [a b]] a)", RtfsSyntaxError, "rest parameter of a function is a name",
     (1, 14)),
    ("(let [{:a :b} {:a 1}] 1)", RtfsSyntaxError, "a map pattern entry", (1, 8)),
    ("(match 1 [a] :vec {:a a} :map)", MatchError, "no match clause accepts 1", (1, 1)),
    ("(match 1 (:int))", RtfsSyntaxError, "needs an expression", (1, 10)),
    ("(match 1 (:undefined-type x) 1)", MatchError, "no match clause accepts 1", (1, 1)),
])
def test_pattern_errors(text, error, message, position):
    with pytest.raises(error) as info:
        evaluate(text)
    assert message in info.value.message
    assert (info.value.line, info.value.col) == position


@pytest.mark.parametrize("text, argc", [
    ("((fn [[a b]] a))", 0), ("((fn [[a b]] a) [1 2] [3 4])", 2),
    ("((fn [{:keys [a]} b] a) {:a 1})", 1), ("(do (defn greet {:keys [n]} n) (greet))", 0),
    ("((fn [x & [more]] x))", 0), ("(#(+ %1 %2) 1)", 1),
])
def test_patterns_that_cannot_absorb_the_arguments_are_arity_errors(text, argc):
    try:
        evaluate(text)
    except RtfsSyntaxError:  # (fn [x & [more]] ...) is refused before it runs
        assert "& [" in text
        return
    except ArityError as err:
        assert f"got {argc}" in err.message
        return
    pytest.fail("no error")
