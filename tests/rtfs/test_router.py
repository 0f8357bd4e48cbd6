"""The CallRouter contract between the VM and whatever decides where calls run."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from rtfs.compiler import compile_program
from rtfs.errors import CapabilityError, HostError, UnboundSymbolError
from rtfs.reader import read
from rtfs.router import CallKind, Claim, LocalRouter, RoutedCall
from rtfs.values import DelegationHint, HintKind, Keyword, Map, own_names
from rtfs.vm import VM
from tests.rtfs.conftest import evaluate


class RecordingRouter:
    """Routes claimed names to `answers` (or runs them locally), recording every call."""

    def __init__(self, claimed=(), answers=None):
        self.version = 0
        self.claimed = set(claimed)
        self.answers = answers or {}
        self.calls: list[RoutedCall] = []
        self.claims_asked: list[str] = []
        self.lock = threading.Lock()

    def claims(self, name):
        with self.lock:
            self.claims_asked.append(name)
        return name in self.claimed

    def route(self, call):
        with self.lock:
            self.calls.append(call)
        answer = self.answers.get(call.name)
        return answer(call) if answer else call.run_local()


def test_hinted_function_goes_to_the_router_with_its_hint_and_args():
    router = RecordingRouter(answers={"add": lambda call: ("remote", call.args)})
    vm = VM(router=router)
    text = '(defn ^:delegation :remote "gpt4o" add [x y] (+ x y)) (add 1 2)'
    assert evaluate(text, vm) == ("remote", (1, 2))
    [call] = router.calls
    assert call.kind is CallKind.FUNCTION and call.hint == DelegationHint(HintKind.REMOTE, "gpt4o")
    assert call.code is vm.globals["add"].code
    assert (call.line, call.col) == (1, text.index("(add 1") + 1)


def test_run_local_runs_the_body_and_routed_calls_nest():
    router = RecordingRouter()
    text = """(defn ^:delegation :local inner [x] (* x 10))
              (defn ^:delegation {:target "remote-openai"} outer [x] (+ 1 (inner x)))
              (outer 4)"""
    assert evaluate(text, VM(router=router)) == 41
    assert [c.name for c in router.calls] == ["outer", "inner"]
    assert router.calls[0].hint.kind is HintKind.TARGET


def test_hinted_function_passed_to_map_is_still_routed():
    router = RecordingRouter(answers={"f": lambda call: call.args[0] * 100})
    assert evaluate('(defn ^:delegation :local f [x] x) (map f [1 2])', VM(router=router)) == (
        100, 200)


def test_claimed_symbol_without_a_definition_reaches_the_router_with_call_metadata():
    router = RecordingRouter(claimed={"summarize"}, answers={"summarize": lambda c: "short"})
    result = evaluate('(let [doc "long text"] ^{:sensitive true} (summarize doc))',
                      VM(router=router))
    assert result == "short"
    [call] = router.calls
    assert call.callee is None and call.args == ("long text",)
    assert call.metadata == Map({Keyword("sensitive"): True})


def test_claimed_but_unbound_symbol_run_locally_is_an_unbound_error():
    router = RecordingRouter(claimed={"nowhere"})
    with pytest.raises(UnboundSymbolError, match="nowhere"):
        evaluate("(nowhere 1)", VM(router=router))


def test_claims_is_asked_once_per_call_site_until_the_version_changes():
    router = RecordingRouter()
    vm = VM(router=router)
    evaluate("(defn down [n] (if (= n 0) :done (down (- n 1))))", vm)
    evaluate("(down 200)", vm)
    # one question per call site: `=`, `down` and `-` inside down, `down` at the top level
    assert sorted(router.claims_asked) == ["-", "=", "down", "down"]
    router.claims_asked.clear()
    router.version += 1
    router.claimed.add("-")
    router.answers["-"] = lambda call: 0  # a routed `-` jumps straight to zero
    assert evaluate("(down 200)", vm) == Keyword("done")
    assert "-" in router.claims_asked and len(router.calls) == 1


def test_unclaimed_pure_builtins_never_reach_route():
    router = RecordingRouter()
    evaluate("(reduce + (map inc (range 100)))", VM(router=router))
    assert router.calls == []


def test_capability_calls():
    with pytest.raises(CapabilityError, match="unknown capability :cap.none"):
        evaluate('(call :cap.none 1)')
    router = LocalRouter(capabilities={"math.double": lambda x: 2 * x})
    assert evaluate("(call :math.double 21)", VM(router=router)) == 42
    recording = RecordingRouter(answers={"ns.op": lambda c: list(c.args)})
    assert evaluate('(call "ns.op" 1 2)', VM(router=recording)) == [1, 2]
    assert recording.calls[0].kind is CallKind.CAPABILITY


def test_foreign_router_errors_become_host_errors_at_the_call():
    def fail(call):
        raise ConnectionError("provider unreachable")

    router = RecordingRouter(claimed={"ask"}, answers={"ask": fail})
    with pytest.raises(HostError, match="ask: ConnectionError: provider unreachable") as info:
        evaluate('(do 1\n  (ask "q"))', VM(router=router))
    assert (info.value.line, info.value.col) == (2, 3)
    assert isinstance(info.value.__cause__, ConnectionError)
    assert evaluate('(try (ask "q") (catch HostError e :fallback))', VM(router=router)) == (
        Keyword("fallback"))


def test_parallel_runs_routed_branches_concurrently_in_binding_order():
    barrier = threading.Barrier(3, timeout=10)

    def slow(call):
        barrier.wait()  # only returns once all three branches are in flight at once
        return call.args[0] * 2

    router = RecordingRouter(claimed={"remote-double"}, answers={"remote-double": slow})
    text = "(parallel [a (remote-double 1)] [b (remote-double 2)] [c (remote-double 3)])"
    assert evaluate(text, VM(router=router)) == (2, 4, 6)


def test_parallel_of_pure_branches_stays_on_one_thread():
    seen = set()

    def where(call):
        seen.add(threading.get_ident())
        return 1

    router = RecordingRouter(answers={"cap.where": where})
    vm = VM(router=router)
    assert evaluate("(parallel [a (+ 1 2)] [b (* 3 4)])", vm) == (3, 12)
    assert vm.leaves_vm(compile_program(read("(+ 1 2)"))) is False
    assert vm.leaves_vm(compile_program(read("(call :cap.where)"))) is True
    evaluate("(parallel [a (call :cap.where)] [b (call :cap.where)])", vm)
    assert len(seen) == 2


def test_parallel_reports_the_first_failing_branch_in_binding_order():
    with pytest.raises(Exception, match="division by zero"):
        evaluate("(parallel [a (thread/sleep 1)] [b (/ 1 0)] [c (nth [] 3)])")


def test_vm_call_is_reentrant_and_thread_safe():
    vm = VM()
    evaluate("(defn fib [n] (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))", vm)
    fib = vm.globals["fib"]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: vm.call(fib, [n]), [15, 16, 17, 18] * 8))
    assert results == [610, 987, 1597, 2584] * 8


class OnceRouter(RecordingRouter):
    """Claims `+` ONCE (decided LocalPure whatever the arguments)."""

    def claims(self, name):
        super().claims(name)
        return Claim.ONCE if name == "+" else Claim.NO


def test_a_once_claim_routes_the_first_call_of_each_site_then_runs_in_the_vm():
    router = OnceRouter()
    vm = VM(router=router)
    text = "(defn f [n] (+ n 1)) (+ (f 1) (f 2) (f 3))"
    assert evaluate(text, vm) == 9
    # two call sites of +: the one in f (first of three calls) and the top-level one
    assert [c.name for c in router.calls] == ["+", "+"]
    router.version += 1  # policy changed: the site asks again and routes once more
    assert vm.call(vm.globals["f"], [5]) == 6
    assert len(router.calls) == 3


def test_routed_calls_carry_the_callee_s_own_names():
    router = RecordingRouter()
    vm = VM(router=router)
    text = """(defn ^:delegation :local secret [x] x)
              (def alias1 secret)
              (def alias2 alias1)
              (let [f alias2] (f 1))
              ((partial secret) 2)"""
    evaluate(text, vm)
    assert [c.names for c in router.calls] == [frozenset({"secret", "alias1", "alias2"})] * 2
    assert own_names(vm.globals["secret"]) == {"secret", "alias1", "alias2"}
    wrapper = evaluate("(partial (comp secret))", vm)
    assert own_names(wrapper) == {"secret", "alias1", "alias2"}
    assert own_names(evaluate("str", vm)) == frozenset()
