"""Encoding, decoding, verification and the hashes that name code."""

from __future__ import annotations

import dataclasses

import pytest
import xxhash

from rtfs.bytecode import Code, Op
from rtfs.canonical import packb
from rtfs.compiler import compile_program
from rtfs.encoding import decode, encode
from rtfs.errors import BytecodeError
from rtfs.reader import read
from rtfs.values import DelegationHint, HintKind
from rtfs.verify import verify
from rtfs.vm import VM
from tests.rtfs.conftest import evaluate

PROGRAM = """
(defn square [x:int] :int (* x x))
(defn ^:delegation :remote "gpt4o" hyp [a b] (+ (square a) (square b)))
(defn classify [v]
  (match v
    [a b] (try (/ a b) (catch ArithmeticError e :div0) (finally :done))
    {:n n} (if (> n 99999999999999999999) :huge n)
    _ (parallel [x 1] [y #{:s}])))
[(hyp 3 4) (classify [1 0]) (classify {:n 123456789012345678901234}) (classify nil)
 (let [{:keys [p] :or {p 2.5}} {}] p) ^{:sensitive true} (square -0)]
"""


def compiled(text: str = PROGRAM) -> Code:
    return compile_program(read(text))


def function(code: Code, name: str) -> Code:
    return next(c for c in code.children() if c.name == name)


def test_same_source_gives_the_same_bytes_and_blob_hash():
    first, second = encode(compiled()), encode(compiled())
    assert first == second
    assert xxhash.xxh3_128_hexdigest(first) == xxhash.xxh3_128_hexdigest(second)


def test_round_trip_runs_the_same():
    code = compiled()
    decoded = decode(encode(code))
    assert VM().run(decoded) == VM().run(code)
    assert encode(decoded) == encode(code)


def test_big_integers_use_the_extension_type():
    data = encode(compiled("123456789012345678901234567890"))
    assert b"\xc7" in data or b"\xd8" in data  # msgpack ext 8/16
    assert VM().run(decode(data)) == 123456789012345678901234567890


def test_ints_and_floats_stay_distinct():
    assert VM().run(decode(encode(compiled("[1 1.0 true]")))) == (1, 1.0, True)
    assert [type(v) for v in VM().run(decode(encode(compiled("[1 1.0 true]"))))] == [
        int, float, bool]


def test_hint_travels_with_the_function_on_every_path():
    vm = VM()
    evaluate(PROGRAM, vm)
    from_source = vm.globals["hyp"].code.hint
    from_bytecode = function(compiled(), "hyp").hint
    from_decoded = function(decode(encode(compiled())), "hyp").hint
    assert from_source == from_bytecode == from_decoded == DelegationHint(HintKind.REMOTE, "gpt4o")


def test_interface_hash_is_what_a_caller_knows():
    base = function(compiled("(defn f [x:int] :int (+ x 1))"), "f")
    same_signature = function(compiled("(defn f [x:int] :int (* x 100))"), "f")
    other_type = function(compiled("(defn f [x:float] :int (+ x 1))"), "f")
    other_hint = function(compiled('(defn ^:delegation :remote "m" f [x:int] :int (+ x 1))'), "f")
    assert base.interface_hash() == same_signature.interface_hash()
    assert base.interface_hash() != other_type.interface_hash()
    assert base.interface_hash() != other_hint.interface_hash()
    assert len(base.interface_hash()) == 16
    decoded = function(decode(encode(compiled("(defn f [x:int] :int (+ x 1))"))), "f")
    assert decoded.interface_hash() == base.interface_hash()


def test_source_hash_ignores_positions_and_covers_callees():
    a = compiled("(defn g [x] (+ x 1)) (defn f [y] (g y))")
    moved = compiled("\n\n   (defn g [x]\n (+ x 1))\n(defn f [y]   (g y))")
    changed_callee = compiled("(defn g [x] (+ x 2)) (defn f [y] (g y))")
    assert function(a, "f").source_hash == function(moved, "f").source_hash
    assert function(a, "g").source_hash != function(changed_callee, "g").source_hash
    # f's own text is identical, but it calls a different g: a different source hash
    assert function(a, "f").source_hash != function(changed_callee, "f").source_hash
    assert function(a, "f").deps == (("g", function(a, "g").source_hash.hex()),)


def test_source_hash_of_callees_defined_earlier_in_the_environment():
    vm = VM()
    evaluate("(defn g [x] (+ x 1))", vm)
    later = compile_program(read("(defn f [y] (g y))"), resolve_source=vm.source_hash_of)
    together = compiled("(defn g [x] (+ x 1)) (defn f [y] (g y))")
    assert function(later, "f").source_hash == function(together, "f").source_hash


def test_mutually_recursive_functions_hash_their_cycle():
    text = ("(defn ev [n] (if (= n 0) true (od (- n 1))))"
            " (defn od [n] (if (= n 0) false (ev (- n 1))))")
    code, edited = compiled(text), compiled(text.replace("false", "nil"))
    assert function(code, "ev").source_hash != function(edited, "ev").source_hash
    assert function(code, "ev").source_hash != function(code, "od").source_hash


def test_encoding_is_canonical_msgpack_without_maps():
    data = encode(compiled("{:a 1 :b [2 {:c 3}]}"))
    assert data[0] == 0x93  # a 3-element array: [format, magic, code]
    assert packb([1, "x"]) == b"\x92\x01\xa1x"


# -- hostile bytes ------------------------------------------------------------------------------
def plain_with(code: Code, **changes) -> bytes:
    return encode(dataclasses.replace(code, **changes))


@pytest.mark.parametrize("data, message", [
    (b"", "malformed msgpack"),
    (b"\xc1", "malformed msgpack"),
    (b"\x81\xa1a\x01", "malformed msgpack"),  # maps are refused
    (packb([1, "elf", []]), "bad magic"),
    (packb([99, "rtfs-code", []]), "format 99"),
    (packb([1, "rtfs-code", ["x"]]), "malformed code object"),
    (b"\x93\x01\xa9rtfs-code\xdd\xff\xff\xff\xff", "malformed msgpack"),  # claims 4G items
])
def test_decoder_refuses_malformed_bytes(data, message):
    with pytest.raises(BytecodeError, match=message):
        decode(data)


def small() -> Code:
    return compile_program(read("(let [x 1] (if x (+ x 2) 3))"))


@pytest.mark.parametrize("mutate, message", [
    (lambda c: {"args": (99,) + c.args[1:]}, "constant 99 does not exist"),
    (lambda c: {"ops": (200,) + c.ops[1:]}, "unknown opcode"),
    (lambda c: {"ops": c.ops[:-1] + (Op.POP,)}, "past the last instruction"),
    (lambda c: {"ops": (Op.POP,) + c.ops[1:]}, "POP needs 1 stack values"),
    (lambda c: {"ops": (Op.LOAD_LOCAL,) + c.ops[1:], "args": (7,) + c.args[1:]},
     "local slot 7 does not exist"),
    (lambda c: {"ops": c.ops[:2] + (Op.JUMP,) + c.ops[3:], "args": c.args[:2] + (1,) + c.args[3:]},
     "not a later instruction"),
    (lambda c: {"ops": c.ops[:-1] + (Op.POP_TRY,), "args": c.args}, "POP_TRY without"),
    (lambda c: {"ops": (Op.DUP, Op.LOAD_CONST) + c.ops[2:], "args": (0, 0) + c.args[2:]},
     "DUP needs 1"),
    (lambda c: {"positions": c.positions[:-1]}, "tables disagree"),
    (lambda c: {"nlocals": 70000}, "70000 locals"),
])
def test_verifier_refuses_invalid_code(mutate, message):
    code = small()
    bad = dataclasses.replace(code, **mutate(code))
    with pytest.raises(BytecodeError, match=message):
        verify(bad)
    with pytest.raises(BytecodeError):  # and the same code arriving as bytes
        decode(encode(bad))


def test_verifier_checks_stack_height_where_paths_meet():
    code = compile_program(read("(if true 1 2)"))
    # make the else branch push one value too many: LOAD_CONST twice
    ops, args = list(code.ops), list(code.args)
    else_at = ops.index(Op.JUMP) + 1
    ops.insert(else_at, Op.LOAD_CONST)
    args.insert(else_at, 0)
    shifted = [a + 1 if op in (Op.JUMP, Op.JUMP_IF_FALSE) and a > else_at else a
               for op, a in zip(ops, args)]
    bad = dataclasses.replace(code, ops=tuple(ops), args=tuple(shifted),
                              positions=code.positions + (1, 1))
    with pytest.raises(BytecodeError, match="different stack states"):
        verify(bad)


def test_nested_functions_are_verified_too():
    code = compile_program(read("(fn [x] x)"))
    child = code.children()[0]
    broken = dataclasses.replace(child, ops=(Op.RETURN,), args=(0,), positions=(1, 1))
    consts = tuple(broken if c is child else c for c in code.consts)
    outer = dataclasses.replace(code, consts=consts)
    with pytest.raises(BytecodeError, match="RETURN needs 1"):
        decode(encode(outer))
