"""The VM's cooperative deadline: checked at calls and inside loops the program controls.

No test sleeps or times anything: the clock is a fake that moves one second per reading, so a
deadline N seconds away passes at the N-th reading, and a run that never reads the clock
inside some loop would finish (slowly) with a value instead of raising.
"""

from __future__ import annotations

import pickle
import threading

import pytest

from rtfs.compiler import compile_program
from rtfs.deadline import CHECK_EVERY, Deadline
from rtfs.errors import DeadlineExceeded, RtfsError
from rtfs.reader import read
from rtfs.router import LocalRouter, RoutedCall
from rtfs.values import Map
from rtfs.vm import VM


class ReadingClock:
    """A clock that advances `step_s` every time it is read, and counts its readings."""

    def __init__(self, step_s: float = 1.0) -> None:
        self.now = 0.0
        self.step_s = step_s
        self.reads = 0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            self.reads += 1
            self.now += self.step_s
            return self.now


def compile_text(text: str):
    return compile_program(read(text))


def make_vm(fast: bool, **kwargs) -> VM:
    """The bytecode loop, or the fast path with every function translated from its first
    call."""
    return VM(fast=fast, translate_after=0, **kwargs)


MODES = [pytest.param(False, id="loop"), pytest.param(True, id="fast")]


@pytest.fixture(params=MODES)
def fast(request) -> bool:
    return request.param


def test_the_issue_example_stops_at_its_deadline(fast):
    clock = ReadingClock()
    vm = make_vm(fast)
    program = compile_text(
        "(reduce + (map (fn [i] (reduce + (range 10000000))) (range 1000)))")
    with pytest.raises(DeadlineExceeded) as info:
        vm.run(program, deadline=Deadline(5.0, clock))
    # it stopped at the first reading past the deadline, not after more work
    assert clock.reads == 5
    assert (info.value.line, info.value.col) is not None


@pytest.mark.parametrize("text, where", [
    ("(defn f [n] (if (= n 0) 0 (+ 1 (f (- n 1)))))\n(f 100000)", "recursion"),
    ("(defn g [n] (if (= n 0) 0 (g (- n 1))))\n(reduce + (map g (range 5000)))", "map"),
    ("(count (filter (fn [x] (even? x)) (range 9000000)))", "filter"),
    ("(reduce + (range 9000000))", "reduce over a builtin"),
    ("(some (fn [x] (< x 0)) (range 9000000))", "some"),
    ("(every? (fn [x] (>= x 0)) (range 9000000))", "every?"),
    ("(count (sort (fn [a b] (< b a)) (range 900000)))", "sort with a comparator"),
    ("(apply + (range 9000000))", "apply over a long sequence"),
    ("(count (str (range 3000000)))", "a string builder"),
])
def test_long_running_programs_stop_at_their_deadline(fast, text, where):
    clock = ReadingClock()
    with pytest.raises(DeadlineExceeded):
        make_vm(fast).run(compile_text(text), deadline=Deadline(3.0, clock))
    assert clock.reads == 3, where


# Builtins whose own loops run as long as their input is: each is given a large input built
# in Python, so only a check inside the builtin's loop can stop it.
N = 200_000
INPUTS = {
    "ints": lambda: tuple(range(N)),
    "ones": lambda: (1,) * N,
    "pairs": lambda: tuple((i, i) for i in range(N)),
    "maps": lambda: tuple(Map({i: i}) for i in range(N)),
}
LOOPS = [
    ("(fn [xs] (sort xs))", "sort", "ints"),
    ("(fn [xs] (sort-by - xs))", "sort-by", "ints"),
    ("(fn [xs] (str xs))", "str of a large vector", "ints"),
    ("(fn [xs] (pr-str xs))", "pr-str", "ints"),
    ("(fn [xs] (apply str xs))", "str of many arguments", "ints"),
    ("(fn [xs] (join \",\" xs))", "join", "ints"),
    ("(fn [xs] (= xs (vec (concat xs []))))", "= on large vectors", "ints"),
    ("(fn [xs] (= (zipmap xs xs) (zipmap xs xs)))", "= on large maps", "ints"),
    ("(fn [xs] (frequencies xs))", "frequencies", "ints"),
    ("(fn [xs] (distinct xs))", "distinct", "ints"),
    ("(fn [xs] (flatten [xs xs]))", "flatten", "ints"),
    ("(fn [xs] (partition 2 xs))", "partition", "ints"),
    ("(fn [xs] (apply max xs))", "max", "ints"),
    ("(fn [xs] (apply + xs))", "+", "ints"),
    ("(fn [xs] (apply < xs))", "<", "ints"),
    ("(fn [xs] (apply * xs))", "*", "ones"),
    ("(fn [xs] (apply = xs))", "=", "ones"),
    ("(fn [xs] (compare xs (vec (concat xs []))))", "compare", "ints"),
    ("(fn [xs] (apply dissoc {} xs))", "dissoc", "ints"),
    ("(fn [xs] (select-keys {} xs))", "select-keys", "ints"),
    ("(fn [xs] (into {} xs))", "into a map", "pairs"),
    ("(fn [xs] (apply assoc [] (apply concat xs)))", "assoc on a vector", "pairs"),
    ("(fn [xs] (apply merge xs))", "merge", "maps"),
    ("(fn [xs] (select-keys (zipmap xs xs) xs))", "select-keys of a large map", "ints"),
]


@pytest.mark.parametrize("text, name, kind", LOOPS, ids=[name for _, name, _ in LOOPS])
def test_builtin_loops_over_large_inputs_stop_at_the_deadline(fast, text, name, kind):
    vm = make_vm(fast)
    fn = vm.run(compile_text(text))
    items = INPUTS[kind]()
    clock = ReadingClock()
    with pytest.raises(DeadlineExceeded):
        vm.call(fn, [items], deadline=Deadline(2.5, clock))
    assert clock.reads == 3, name


def test_a_deadline_number_is_a_time_on_the_vm_clock(fast):
    clock = ReadingClock()
    vm = make_vm(fast, clock=clock)
    with pytest.raises(DeadlineExceeded):
        vm.run(compile_text("(reduce + (range 9000000))"), deadline=2.5)
    assert clock.reads == 3


def test_a_passed_deadline_stops_the_run_before_it_starts(fast):
    out = []
    vm = make_vm(fast, out=None)
    vm.write = out.append  # println would write here
    with pytest.raises(DeadlineExceeded):
        vm.run(compile_text('(println "started")'), deadline=Deadline(0.0, ReadingClock()))
    assert out == []


def test_no_deadline_means_no_clock_reading(fast):
    clock = ReadingClock()
    vm = make_vm(fast, clock=clock)
    assert vm.run(compile_text("(reduce + (map inc (range 100000)))")) == 5000050000
    assert clock.reads == 0


def test_a_deadline_error_has_the_position_of_the_call_and_pickles(fast):
    text = "(defn f [n] (if (= n 0) 0 (+ 1 (f (- n 1)))))\n(f 100000)"
    with pytest.raises(DeadlineExceeded) as info:
        make_vm(fast).run(compile_text(text), deadline=Deadline(1.5, ReadingClock()))
    err = info.value
    assert isinstance(err, TimeoutError) and isinstance(err, RtfsError)
    call = (1, text.index("(f (- n 1))") + 1)  # the recursive call
    assert (err.line, err.col) == call
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is DeadlineExceeded and (copy.line, copy.col) == call


def test_catch_all_does_not_swallow_a_deadline(fast):
    text = """(defn spin [n] (if (= n 0) 0 (+ 1 (spin (- n 1)))))
              (try (spin 100000) (catch Exception e :swallowed))"""
    with pytest.raises(DeadlineExceeded):
        make_vm(fast).run(compile_text(text), deadline=Deadline(1.5, ReadingClock()))


def test_a_deadline_caught_by_name_stays_expired(fast):
    text = """(defn spin [n] (if (= n 0) 0 (+ 1 (spin (- n 1)))))
              (try (spin 100000) (catch DeadlineExceeded e (spin 10)))"""
    clock = ReadingClock()
    with pytest.raises(DeadlineExceeded):
        make_vm(fast).run(compile_text(text), deadline=Deadline(1.5, clock))
    assert clock.reads == 3  # the handler's first call read the clock again and stopped


def test_parallel_branches_on_threads_inherit_the_deadline(fast):
    calls = []

    class Router(LocalRouter):
        def claims(self, name):
            return name == "remote"

        def route(self, call: RoutedCall):
            calls.append(call)
            return call.run_local()

    vm = make_vm(fast, router=Router())
    vm.run(compile_text("(defn remote [n] n) (defn spin [n] (if (= n 0) 0 (spin (- n 1))))"))
    text = "(parallel [a (remote (spin 100000))] [b (remote (spin 100000))])"
    clock = ReadingClock()
    deadline = Deadline(2.5, clock)
    with pytest.raises(DeadlineExceeded):
        vm.run(compile_text(text), deadline=deadline)
    assert all(call.deadline is deadline for call in calls)


def test_a_router_reentering_the_vm_continues_the_same_deadline(fast):
    seen = []

    class Router(LocalRouter):
        def claims(self, name):
            return name == "work"

        def route(self, call: RoutedCall):
            seen.append(call.deadline)
            # a router running the call itself, through the public API
            return vm.call(vm.globals["work-impl"], list(call.args))

    vm = make_vm(fast, router=Router())
    vm.run(compile_text("(defn work-impl [n] (reduce + (range n)))"))
    clock = ReadingClock()
    deadline = Deadline(3.0, clock)
    with pytest.raises(DeadlineExceeded):
        vm.run(compile_text("(work 9000000)"), deadline=deadline)
    assert seen == [deadline]


def test_a_routed_call_after_the_deadline_never_reaches_the_router(fast):
    routed = []

    class Router(LocalRouter):
        def claims(self, name):
            return name == "ask"

        def route(self, call):
            routed.append(call)
            return 1

    vm = make_vm(fast, router=Router())
    text = "(defn spin [n] (if (= n 0) 0 (spin (- n 1)))) (spin 2500) (ask 1)"
    clock = ReadingClock()
    with pytest.raises(DeadlineExceeded):
        vm.run(compile_text(text), deadline=Deadline(3.0, clock))
    assert routed == []


def test_check_every_bounds_the_work_between_two_readings(fast):
    clock = ReadingClock(step_s=0.0)  # never passes the deadline: only counts readings
    vm = make_vm(fast)
    fn = vm.run(compile_text("(fn [n] (reduce (fn [acc x] (+ acc x)) 0 (range n)))"))
    calls = 50 * CHECK_EVERY
    assert vm.call(fn, [calls], deadline=Deadline(1.0, clock)) == sum(range(calls))
    assert calls // CHECK_EVERY <= clock.reads <= calls // CHECK_EVERY + 3


def test_a_deadline_pickles_and_keeps_its_clock():
    deadline = Deadline.after(30.0)
    copy = pickle.loads(pickle.dumps(deadline))
    assert copy == deadline and copy.clock is deadline.clock
    assert 0 < copy.remaining_s() <= 30.0 and not copy.expired()


def test_a_wait_past_the_deadline_stops_the_run_without_waiting(fast):
    clock = ReadingClock(step_s=0.0)  # time stands still: only the wait could pass it
    text = "(do (thread/sleep 0) (thread/sleep 60000) :never)"
    with pytest.raises(DeadlineExceeded, match="wait past it") as info:
        make_vm(fast).run(compile_text(text), deadline=Deadline(30.0, clock))
    assert (info.value.line, info.value.col) == (1, text.index("(thread/sleep 60000)") + 1)
