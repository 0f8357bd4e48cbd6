"""Program-level source hashes: forward references, mutual recursion, redefinitions."""

from __future__ import annotations

from rtfs.bytecode import Code
from rtfs.compiler import compile_program, compile_top_level_form
from rtfs.hashing import defn_source_hash, program_source_hashes
from rtfs.reader import read
from rtfs.vm import VM


def hashes_of(text: str, resolve=None):
    return program_source_hashes(read(text), resolve=resolve)


def function(code: Code, name: str) -> Code:
    found = [c for c in code.children() if c.name == name]
    assert found, name
    return found[0]


def test_a_forward_reference_is_a_dependency():
    program = "(defn f [x] (g x))\n(defn g [x] (+ x 1))"
    hashes = hashes_of(program)
    g = hashes.defined_by(1)
    assert hashes.in_form(0)[0].deps == (("g", g.hex()),)
    edited = hashes_of(program.replace("(+ x 1)", "(+ x 2)"))
    assert edited.defined_by(0) != hashes.defined_by(0)  # same text of f, another callee


def test_compiling_one_form_carries_the_program_level_hashes():
    program = "(defn f [x] (g x))\n(defn g [x] (+ x 1))\n(f 41)"
    hashes = hashes_of(program)
    f = function(compile_top_level_form(hashes, 0), "f")
    assert f.source_hash == hashes.defined_by(0)
    assert f.deps == (("g", hashes.defined_by(1).hex()),)
    top = compile_top_level_form(hashes, 2)
    assert top.deps == (("f", hashes.defined_by(0).hex()),)


def test_forms_compiled_one_by_one_run_like_the_program_compiled_whole():
    program = read("""
        (defn total [xs] (reduce add 0 xs))
        (defn add [a b] (+ a (weight b)))
        (def weight (fn [x] (* 2 x)))
        (total [1 2 3])""")
    hashes = program_source_hashes(program)
    vm = VM()
    values = [vm.run(compile_top_level_form(hashes, i)) for i in range(len(program))]
    assert values[-1] == 12 == VM().run(compile_program(program))
    assert vm.globals["total"].code.source_hash == hashes.defined_by(0)


def test_the_same_hashes_whether_compiled_together_or_form_by_form():
    text = ("(defn ev [n] (if (= n 0) true (od (- n 1))))\n"
            "(defn od [n] (if (= n 0) false (ev (- n 1))))\n"
            "(defn top [n] [(ev n) (od n)])")
    together = compile_program(read(text))
    hashes = hashes_of(text)
    for index, name in enumerate(["ev", "od", "top"]):
        alone = function(compile_top_level_form(hashes, index), name)
        assert alone.source_hash == function(together, name).source_hash
        assert alone.deps == function(together, name).deps


def test_mutual_recursion_across_forms_hashes_the_cycle():
    text = ("(defn ev [n] (if (= n 0) true (od (- n 1))))\n"
            "(defn od [n] (if (= n 0) false (ev (- n 1))))")
    hashes = hashes_of(text)
    ev, od = hashes.in_form(0)[0], hashes.in_form(1)[0]
    assert ev.deps == od.deps and ev.deps[0][0] == "<cycle>"
    assert ev.source_hash != od.source_hash
    edited = hashes_of(text.replace("false", "nil"))
    assert edited.defined_by(0) != hashes.defined_by(0)  # ev's text is unchanged


def test_a_redefinition_after_the_caller_is_covered_too():
    """f can run against either g: both are in its hash, in program order."""
    text = "(defn g [] 1)\n(defn f [] (g))\n(defn g [] 2)"
    hashes = hashes_of(text)
    f = hashes.in_form(1)[0]
    assert f.deps == (("g@0", hashes.defined_by(0).hex()), ("g@1", hashes.defined_by(2).hex()))
    assert hashes_of(text.replace("2)", "3)")).defined_by(1) != hashes.defined_by(1)
    assert hashes_of(text.replace("1)", "7)")).defined_by(1) != hashes.defined_by(1)


def test_a_definition_replaced_before_the_caller_is_not_a_dependency():
    text = "(defn g [] 1)\n(defn g [] 2)\n(defn f [] (g))"
    hashes = hashes_of(text)
    assert [name for name, _ in hashes.in_form(2)[0].deps] == ["g@1"]
    assert hashes_of(text.replace("1)", "7)", 1)).defined_by(2) == hashes.defined_by(2)


def test_a_self_recursive_function_redefined_later_depends_on_the_later_one():
    text = "(defn f [n] (if (= n 0) :done (f (- n 1))))\n(defn f [n] :replaced)"
    hashes = hashes_of(text)
    assert hashes.in_form(0)[0].deps == (("f@1", hashes.defined_by(1).hex()),)
    assert hashes.in_form(1)[0].deps == ()


def test_aliases_and_nested_definitions_are_definitions():
    text = ("(defn base [] 1)\n(def alias base)\n"
            "(let [offset 10] (defn helper [x] (+ x offset (alias))))\n"
            "(defn user [] (helper 2))")
    hashes = hashes_of(text)
    assert [d.name for d in hashes.definitions] == ["base", "alias", "helper", "user"]
    user = hashes.in_form(3)[0]
    assert user.deps == (("helper", hashes.defined_by(2, "helper").hex()),)
    edited = hashes_of(text.replace("[] 1)", "[] 2)"))
    assert edited.in_form(3)[0].source_hash != user.source_hash  # through alias and helper


def test_quoted_code_defines_nothing():
    hashes = hashes_of("(def code '(defn f [] 1))\n(defn g [] (f))")
    assert [d.name for d in hashes.definitions] == ["code", "g"]
    assert hashes.in_form(1)[0].deps == ()


def test_names_the_program_does_not_define_come_from_the_environment():
    vm = VM()
    vm.run(compile_program(read("(defn lib [x] x)")))
    lib = vm.globals["lib"].code.source_hash
    hashes = hashes_of("(defn app [] (lib 1))", resolve=vm.source_hash_of)
    assert hashes.in_form(0)[0].deps == (("lib", lib.hex()),)
    shadowed = hashes_of("(defn app [] (lib 1))\n(defn lib [x] :mine)",
                         resolve=vm.source_hash_of)
    assert shadowed.in_form(0)[0].deps[0][1] == shadowed.defined_by(1).hex()


def test_single_form_hash_matches_its_compilation():
    vm = VM()
    vm.run(compile_program(read("(defn g [x] x)")))
    form = read("(defn f [y] (g (h y)))")[0]
    code = function(compile_program([form], resolve_source=vm.source_hash_of), "f")
    assert defn_source_hash(form, "f", vm.source_hash_of) == code.source_hash
    assert code.deps == (("g", vm.globals["g"].code.source_hash.hex()),)
