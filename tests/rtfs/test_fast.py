"""The fast path (rtfs.fast, rtfs.translate) against the VM loop: same values, same errors,
same positions, same limits, same routing; and the translator's own guarantees.

Every VM here that stands for the fast path is built with `translate_after=0`, so that all
code, top levels included, runs translated from its first call.
"""

from __future__ import annotations

import dataclasses
import gc
import io
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtfs.bytecode import Code, Op
from rtfs.compiler import compile_program
from rtfs.errors import (
    ArityError,
    BytecodeError,
    InternalError,
    RtfsError,
    RtfsRecursionError,
    UnboundSymbolError,
)
from rtfs.fast import NOT_FAST, Linked
from rtfs.printer import to_readable
from rtfs.reader import read, read_each
from rtfs.router import Claim, LocalRouter, RoutedCall
from rtfs.translate import Untranslatable, translate
from rtfs.verify import verify
from rtfs.vm import VM, fast_frames_limit
from tests.rtfs.test_fuzz import _PROGRAM_BUILTINS, FUZZ, SAMPLE, programs


def fast_vm(**kwargs) -> VM:
    return VM(translate_after=0, **kwargs)


def loop_vm(**kwargs) -> VM:
    return VM(fast=False, **kwargs)


def outcome(vm: VM, code: Code) -> tuple:
    """What running `code` gives: its printed value, or its error's type, message, position."""
    try:
        return ("value", to_readable(vm.run(code)))
    except RtfsError as err:
        return ("error", type(err).__name__, err.message, err.line, err.col)


def codes_in(code: Code) -> list[Code]:
    found = [code]
    for child in code.children():
        found.extend(codes_in(child))
    return found


def run_forms(text: str, vm: VM) -> tuple[list[tuple], list[Code]]:
    """Each top-level form's outcome, one compilation per form (as `rtfs eval --each`)."""
    results, compiled = [], []
    for item in read_each(text):
        if isinstance(item, RtfsError):
            results.append(("read", str(item)))
            continue
        try:
            code = compile_program([item], resolve_source=vm.source_hash_of)
        except RtfsError as err:
            results.append(("compile", str(err)))
            continue
        compiled.append(code)
        results.append(outcome(vm, code))
    return results, compiled


# -- equivalence ------------------------------------------------------------------------------
def test_every_conformance_program_runs_the_same_translated(corpus: Path):
    for path in sorted(corpus.glob("*.rtfs")):
        text = path.read_text(encoding="utf-8")
        out_loop, out_fast = io.StringIO(), io.StringIO()
        expected, _ = run_forms(text, loop_vm(out=out_loop))
        actual, compiled = run_forms(text, fast_vm(out=out_fast))
        assert actual == expected, path.name
        assert out_fast.getvalue() == out_loop.getvalue(), path.name
        # the translator covers everything the compiler produced, and it did run translated
        untranslated = [c.qualname for top in compiled for c in codes_in(top)
                        if c.fast is NOT_FAST]
        assert untranslated == [], path.name
        assert all(isinstance(top.fast, Linked) for top in compiled), path.name


def _programs_vm(fast: bool) -> VM:
    kwargs = {"builtins": _PROGRAM_BUILTINS, "max_depth": 200}
    return fast_vm(**kwargs) if fast else loop_vm(**kwargs)


@FUZZ
@given(programs)
def test_generated_programs_run_the_same_translated(text):
    code = compile_program(read(text))
    expected = outcome(_programs_vm(False), code)
    again = compile_program(read(text))  # a fresh Code: nothing shared with the loop's run
    fast = _programs_vm(True)
    actual = outcome(fast, again)
    assert actual == expected, text
    assert isinstance(again.fast, Linked)
    assert not (actual[0] == "error" and actual[1] == InternalError.__name__), text


ERRORS = [
    "(defn f [x] (+ x 1))\n(f 1 2)",
    "(defn f [x] (+ x 1))\n(map f [1 \"a\"])",
    "(let [g (fn [a b] a)]\n  (g 1))",
    "(defn f [] (undefined-thing 1))\n(f)",
    "(defn f [] (let [x nope] x))\n(f)",
    "(defn f [x] (match x [a] a {:k v} v))\n(f 3)",
    "(defn f [x] (throw {:bad x}))\n(try (f 1) (catch ArityError e :no))",
    "(defn f [x] (/ x 0))\n(try (f 1) (finally (str \"done\")))",
    "(defn f [x] ((fn [y] (nth [] y)) x))\n(f 4)",
    "(letfn-like)",
    "(let [f (fn f [n] (if (= n 0) (:missing {}) (f (- n 1))))]\n  (str (f 3) (+ nil 1)))",
    "(defn f [& xs] (apply + xs))\n(f 1 2 :three)",
    "(defn f [{:keys [a]}] (inc a))\n(f {:a \"x\"})",
    "(defn f [[a b & r]] (+ a b (count r)))\n(f [1])",
    "(def x 1)\n(defn f [] (+ x (g)))\n(f)",
]


@pytest.mark.parametrize("text", ERRORS)
def test_errors_have_the_same_kind_message_and_position(text):
    expected = outcome(loop_vm(), compile_program(read(text)))
    assert expected[0] == "error"
    assert outcome(fast_vm(), compile_program(read(text))) == expected


# -- limits -----------------------------------------------------------------------------------
DOWN = "(defn down [n] (if (= n 0) 0 (+ 1 (down (- n 1)))))"


def test_max_depth_holds_on_the_fast_path():
    program = DOWN + "\n(down 1000)"
    expected = outcome(loop_vm(max_depth=300), compile_program(read(program)))
    actual = outcome(fast_vm(max_depth=300), compile_program(read(program)))
    assert actual == expected and actual[1] == RtfsRecursionError.__name__


def test_recursion_deeper_than_the_host_stack_allows_continues_in_the_loop():
    depth = 9000  # far past Python's recursion limit: translated code hands over to the loop
    vm = fast_vm()
    assert vm.fast_limit == min(vm.max_depth, fast_frames_limit()) < depth
    assert vm.run(compile_program(read(DOWN + f"\n(down {depth})"))) == depth


def test_changing_max_depth_reaches_translated_code():
    vm = fast_vm()
    vm.run(compile_program(read(DOWN)))
    assert vm.call(vm.globals["down"], [100]) == 100
    vm.max_depth = 50
    with pytest.raises(RtfsRecursionError):
        vm.call(vm.globals["down"], [100])


def test_recursion_through_higher_order_builtins_fails_as_a_recursion_error():
    text = "(defn walk [n] (if (= n 0) 0 (first (map walk [(- n 1)]))))\n(walk 100000)"
    for vm in (loop_vm(), fast_vm()):
        with pytest.raises(RtfsRecursionError):
            vm.run(compile_program(read(text)))


def test_the_fast_path_is_safe_from_several_threads():
    vm = fast_vm()
    vm.run(compile_program(read("(defn fib [n] (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))")))
    fib = vm.globals["fib"]
    results: list[int] = []

    def work() -> None:
        results.extend(vm.call(fib, [n]) for n in (14, 15, 16))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == sorted([377, 610, 987] * 4)


# -- routing and privacy on the fast path ------------------------------------------------------
class Router(LocalRouter):
    """Claims `claimed` names (with `how`), records routed calls, runs them locally."""

    def __init__(self, claimed=(), how=Claim.ALWAYS):
        super().__init__()
        self.version = 0
        self.claimed, self.how = set(claimed), how
        self.calls: list[RoutedCall] = []
        self.asked: list[str] = []

    def claims(self, name):
        self.asked.append(name)
        return self.how if name in self.claimed else Claim.NO

    def route(self, call):
        self.calls.append(call)
        return call.run_local()


def test_hinted_functions_are_routed_from_every_kind_of_call_site():
    router = Router()
    vm = fast_vm(router=router)
    vm.run(compile_program(read('(defn ^:delegation :remote "m" secret [x] (* x 2))')))
    text = ("[(secret 1) ((fn [f] (f 2)) secret) (map secret [3])"
            " (reduce (fn [a x] (secret x)) 0 [4])]")
    assert vm.run(compile_program(read(text))) == (2, 4, (6,), 8)
    assert [c.args for c in router.calls] == [(1,), (2,), (3,), (4,)]
    assert all(c.names == frozenset({"secret"}) for c in router.calls)


def test_a_global_redefined_as_a_hinted_function_is_routed_from_then_on():
    router = Router()
    vm = fast_vm(router=router)
    vm.run(compile_program(read("(defn g [x] x) (defn f [x] (g x))")))
    f = vm.globals["f"]
    assert vm.call(f, [1]) == 1 and router.calls == []
    vm.run(compile_program(read('(defn ^:delegation :remote "m" g [x] (+ x 100))')))
    assert vm.call(f, [1]) == 101
    assert [c.name for c in router.calls] == ["g"]


def test_a_definition_made_during_a_call_is_seen_by_the_rest_of_that_call():
    vm = fast_vm()
    text = """(defn h [] :old)
              (defn redefine [] (def h (fn [] :new)))
              (defn f [] [(h) (redefine) (h)])
              (f)"""
    expected = outcome(loop_vm(), compile_program(read(text)))
    assert outcome(vm, compile_program(read(text))) == expected
    assert expected == ("value", "[:old #<fn h> :new]")


def test_a_new_router_version_is_asked_again():
    router = Router()
    vm = fast_vm(router=router)
    vm.run(compile_program(read("(defn f [x] (inc x))")))
    f = vm.globals["f"]
    assert vm.call(f, [1]) == 2 and router.calls == []
    router.claimed.add("inc")
    assert vm.call(f, [1]) == 2 and router.calls == []  # same version: the answer stands
    router.version += 1
    assert vm.call(f, [1]) == 2 and [c.name for c in router.calls] == ["inc"]


def test_a_version_change_during_a_routed_call_reaches_the_rest_of_the_caller():
    class Bumping(Router):
        def route(self, call):
            self.claimed.add("dec")
            self.version += 1
            return super().route(call)

    router = Bumping(claimed={"inc"})
    vm = fast_vm(router=router)
    vm.run(compile_program(read("(defn f [x] (dec (inc x)))")))
    assert vm.call(vm.globals["f"], [1]) == 1
    assert [c.name for c in router.calls] == ["inc", "dec"]


def test_a_once_claim_routes_the_first_call_of_each_site_on_the_fast_path():
    router = Router(claimed={"+"}, how=Claim.ONCE)
    vm = fast_vm(router=router)
    vm.run(compile_program(read(DOWN)))
    assert vm.call(vm.globals["down"], [50]) == 50
    assert [c.name for c in router.calls] == ["+"]
    router.version += 1
    assert vm.call(vm.globals["down"], [50]) == 50
    assert [c.name for c in router.calls] == ["+", "+"]


def test_an_unbound_claimed_name_is_routed_each_call_until_it_is_defined():
    class Answering(Router):
        def route(self, call):
            self.calls.append(call)
            return "remote"

    router = Answering(claimed={"later"})
    vm = fast_vm(router=router)
    vm.run(compile_program(read("(defn f [] (later))")))
    f = vm.globals["f"]
    assert [vm.call(f, []), vm.call(f, [])] == ["remote", "remote"]
    router.claimed.clear()
    router.version += 1
    with pytest.raises(UnboundSymbolError, match="unbound symbol: later"):
        vm.call(f, [])
    vm.run(compile_program(read("(defn later [] :local)")))
    assert vm.call(f, []) == vm.globals["later"].code.consts[0]


def test_replacing_the_router_reaches_resolved_call_sites():
    vm = fast_vm()
    vm.run(compile_program(read("(defn f [x] (inc x))")))
    assert vm.call(vm.globals["f"], [1]) == 2
    router = Router(claimed={"inc"})
    vm.router = router
    assert vm.call(vm.globals["f"], [1]) == 2
    assert [c.name for c in router.calls] == ["inc"]


# -- the translator ---------------------------------------------------------------------------
HOSTILE = "x'); __import__('os').system('echo pwned'); ('"


def _function(text: str) -> Code:
    return compile_program(read(text)).children()[0]


def test_the_source_depends_on_structure_not_on_constants_or_names():
    a = translate(_function('(defn f [x] (str "a" x :k (g x)))'), lambda op: True)
    b = translate(_function(f'(defn other [y] (str "{HOSTILE}" y :zz (h-{"q" * 30} y)))'),
                  lambda op: True)
    assert a.source == b.source and a.params == b.params
    assert "pwned" not in b.source and "other" not in b.source and "zz" not in b.source


def test_hostile_constants_and_names_run_as_values():
    vm = fast_vm()
    vm.run(compile_program(read(f'(defn f [] "{HOSTILE}")')))
    assert vm.call(vm.globals["f"], []) == HOSTILE
    # a call site whose callee's name no reader would accept, as decoded bytecode may have
    code = _function("(defn g [x] (callee x))")
    site = code.sites[0]
    hostile = dataclasses.replace(code, sites=(site._replace(name=HOSTILE),))
    assert HOSTILE not in translate(hostile, lambda op: True).source
    vm.define(HOSTILE, vm.globals["inc"])
    from rtfs.values import Closure

    assert vm.call(Closure(hostile, ()), [41]) == 42


def test_translation_is_done_once_per_code_and_linked_once_per_vm():
    code = compile_program(read("(defn f [x] (* x 2))"))
    first, second = fast_vm(), fast_vm()
    first.run(code)
    fn = code.children()[0]
    linked = first.linked(fn)
    assert first.linked(fn) is linked and linked.vm is first
    other = second.linked(fn)
    assert other is not linked and other.factory is linked.factory and other.vm is second


def test_code_is_translated_on_its_second_call_by_default():
    vm = VM()
    code = compile_program(read("(defn f [x] x)"))
    vm.run(code)
    fn = code.children()[0]
    assert not isinstance(code.fast, Linked)  # the top level ran once: not translated
    vm.call(vm.globals["f"], [1])
    assert not isinstance(fn.fast, Linked)
    vm.call(vm.globals["f"], [1])
    assert isinstance(fn.fast, Linked)


def test_code_the_translator_does_not_cover_runs_in_the_loop(monkeypatch):
    import rtfs.fast

    def refuse(code, has_slow_op):
        raise Untranslatable("refused for the test")

    monkeypatch.setattr(rtfs.fast, "translate", refuse)
    vm = fast_vm()
    code = compile_program(read("(defn f [x] (match x [a b] (+ a b) _ 0)) (f [1 2])"))
    assert vm.run(code) == 3
    assert code.fast is NOT_FAST and code.children()[0].fast is NOT_FAST


def test_ops_without_a_native_translation_need_a_generic_handler():
    code = _function("(defn f [x] (match x [a] a _ 0))")
    with pytest.raises(Untranslatable, match="no translation and no generic handler"):
        translate(code, lambda op: False)
    source = translate(code, lambda op: True).source
    assert f"O{int(Op.TEST_SEQ)}(ex, " in source  # the VM's own handler runs it


@FUZZ
@given(st.data())
def test_hostile_verified_code_runs_the_same_translated(data):
    """Random edits of opcodes and operands: whatever the verifier accepts, the translator
    either refuses (the loop runs it) or runs exactly as the loop does."""
    ops, args = list(SAMPLE.ops), list(SAMPLE.args)
    for _ in range(data.draw(st.integers(1, 4))):
        pc = data.draw(st.integers(0, len(ops) - 1))
        if data.draw(st.booleans()):
            ops[pc] = int(data.draw(st.sampled_from(list(Op))))
        else:
            args[pc] = data.draw(st.integers(0, 70))
    mutated = dataclasses.replace(SAMPLE, ops=tuple(ops), args=tuple(args))
    try:
        verify(mutated)
    except BytecodeError:
        return
    expected = outcome(loop_vm(builtins=_PROGRAM_BUILTINS, max_depth=200), mutated)
    again = dataclasses.replace(SAMPLE, ops=tuple(ops), args=tuple(args))
    actual = outcome(fast_vm(builtins=_PROGRAM_BUILTINS, max_depth=200), again)
    assert actual == expected
    assert actual[:2] != ("error", InternalError.__name__)


def test_arity_errors_of_translated_callees_name_the_call_site():
    text = "(defn two [a b] a)\n(defn f [] (two 1))\n(f)"
    expected = outcome(loop_vm(), compile_program(read(text)))
    assert expected[1] == ArityError.__name__ and expected[3:] == (2, 12)
    assert outcome(fast_vm(), compile_program(read(text))) == expected


def test_a_function_shared_by_two_vms_follows_each_vm_s_environment():
    from rtfs.execution import Execution

    code = compile_program(read("(defn g [x] (inc x))"))
    first, second = fast_vm(), fast_vm()
    first.run(code)
    g = first.globals["g"]
    assert first.call(g, [1]) == 2  # `first` links g's code first
    call = Execution(second).caller(g, 1)  # what map holds while it loops, in `second`
    assert call(1) == 2
    gc.collect()  # g's link to `second` is reachable only through `call` now
    second.run(compile_program(read("(defn inc [x] (* x 100))")))
    assert call(1) == 100
    assert first.call(g, [1]) == 2


@pytest.mark.parametrize("text", [
    "(map (fn [a b] a) [])",  # a wrong arity is only an error once the function is called
    "(map (fn [a b] a) [1])",
    "(reduce (fn [a] a) 0 [1])",
    "(filter (fn [] true) [1])",
    "(sort (fn [a] true) [2 1])",
])
def test_higher_order_builtins_call_functions_as_the_loop_does(text):
    expected = outcome(loop_vm(), compile_program(read(text)))
    assert outcome(fast_vm(), compile_program(read(text))) == expected
