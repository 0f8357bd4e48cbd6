"""Compiler: forms -> `Code`.

`compile_program(forms)` compiles the top level of a program; every `fn`/`defn` inside
becomes a child `Code` among its constants. Scoping is lexical: locals live in frame slots,
locals a closure captures live in cells, and everything else is a global looked up when the
call runs. `let` is sequential, except that a binding's name is already visible inside the
bodies of functions bound earlier in the same `let` (so local functions can recurse, also
mutually). Special forms with a bad shape raise `RtfsSyntaxError` with the form's position.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeGuard

from rtfs import hashing
from rtfs.assembler import P_DECLARE, P_LOAD, P_STORE, FunctionBuilder, Label, Var
from rtfs.bytecode import Code, Op
from rtfs.derived import DerivedForms
from rtfs.errors import RtfsSyntaxError
from rtfs.functions import FunctionForms, param_text
from rtfs.macros import MacroForms, MacroTable
from rtfs.patterns import PatternCompiler
from rtfs.reader import COLON, Atom, Form, Seq, form_to_value
from rtfs.signatures import head_name, is_symbol, let_bindings
from rtfs.values import Keyword, Symbol

SourceResolver = Callable[[str], "bytes | None"]

def compile_program(forms: Sequence[Form], *, namespace: str = "user",
                    resolve_source: SourceResolver | None = None,
                    macros: MacroTable | None = None) -> Code:
    """Compile top-level forms into one `Code` whose value is the last form's.

    `resolve_source(name)` gives the source hash of a user function defined earlier in the
    environment (for the Merkle-style source hashes of functions that call it). `macros` is
    the table of macros earlier compilations defined (and this one adds to); by default the
    program's own.
    """
    forms = list(forms)  # one object per form for both passes (`rtfs.reader.Forms` makes
    # a form anew on every access)
    compiler = Compiler(namespace, macros=macros)
    code = compiler.compile_toplevel(forms)
    hashing.assign_source_hashes(compiler.units, resolve_source or (lambda name: None),
                                 forms=forms)
    return code


def compile_top_level_form(hashes: hashing.ProgramHashes, index: int, *,
                           namespace: str = "user", macros: MacroTable | None = None) -> Code:
    """Compile top-level form `index` of the program `hashes` was computed for
    (`rtfs.hashing.program_source_hashes`), alone, so that it can run before the forms after
    it are compiled: every function it defines carries its program-level source hash and
    deps (forward references included), other code the hashes of what its names mean at
    that point of the program."""
    form = hashes.forms[index]
    compiler = Compiler(namespace, macros=macros)
    code = compiler.compile_toplevel([form])
    hashing.assign_source_hashes(compiler.units, hashes.resolver(index), forms=[form],
                                 overrides=hashes.overrides(index))
    return code


class Compiler(FunctionForms, PatternCompiler, DerivedForms, MacroForms):
    def __init__(self, namespace: str, *, macros: MacroTable | None = None) -> None:
        self.namespace = namespace
        self.macros = macros if macros is not None else MacroTable()
        self._expansions = 0
        self.fb: FunctionBuilder = FunctionBuilder(None, "<toplevel>", f"{namespace}/<toplevel>")
        self.units: list[hashing.Unit] = []
        self.recur_arity: list[int | None] = []
        self.loop_body_arity: int | None = None
        self._gensyms = 0
        self.special: dict[str, Callable[[Seq], None]] = {
            "def": self.compile_def, "defn": self.compile_defn, "fn": self.compile_fn,
            "lambda": self.compile_fn, "λ": self.compile_fn,
            "let": self.compile_let, "if": self.compile_if, "do": self.compile_do_form,
            "match": self.compile_match, "try": self.compile_try, "parallel": self.compile_parallel,
            "call": self.compile_capability_call, "quote": self.compile_quote,
            "and": self.compile_and, "or": self.compile_or, "cond": self.compile_cond,
            "when": self.compile_when, "when-not": self.compile_when, "throw": self.compile_throw,
            "->": self.compile_thread, "->>": self.compile_thread,
            **self.derived_forms(), **self.macro_forms(),
        }

    # -- entry points ----------------------------------------------------------------------
    def compile_toplevel(self, forms: list[Form]) -> Code:
        fb = self.fb
        if forms:
            fb.line, fb.col = forms[0].line, forms[0].col
        self.compile_body(forms)
        fb.emit(Op.RETURN)
        code = fb.assemble(params=(), rest=None, return_type=None, hint=None)
        toplevel = _toplevel_form(forms)
        self.units.append(hashing.Unit(code, toplevel, hashing.symbols_in(toplevel), None))
        return code

    def error(self, message: str, form: Form) -> RtfsSyntaxError:
        return RtfsSyntaxError(message, form.line, form.col)

    # -- expressions -----------------------------------------------------------------------
    def compile_expr(self, form: Form) -> None:
        fb = self.fb
        saved = fb.line, fb.col
        fb.line, fb.col = form.line, form.col
        if isinstance(form, Atom):
            self.compile_atom(form)
        elif isinstance(form, Seq):
            if form.kind == "list":
                self.compile_list(form)
            else:
                self.compile_collection(form)
        else:
            raise self.error("a delegation hint belongs in a defn or fn form", form)
        fb.line, fb.col = saved

    def compile_atom(self, form: Atom) -> None:
        if form.value is COLON:
            raise self.error("':' goes between a binding and its type, as in [x : int]", form)
        if isinstance(form.value, Symbol):
            if form.annotation is not None:
                raise self.error(f"a type annotation ({form.value.name}:{form.annotation}) "
                                 "belongs on a binding, not in an expression", form)
            self.load_symbol(form.value.name)
        else:
            self.fb.emit(Op.LOAD_CONST, self.fb.const(form.value))

    def load_symbol(self, name: str) -> None:
        fb = self.fb
        var = fb.find_local(name, allow_pending=False)
        if var is not None:
            fb.emit(P_LOAD, var)
            return
        free = fb.find_free(name)
        if free is not None:
            fb.emit(Op.LOAD_FREE, free)
            return
        fb.emit(Op.LOAD_GLOBAL, fb.name_index(name))

    def compile_collection(self, form: Seq) -> None:
        if all(_is_constant(item) for item in form.items):
            self.fb.emit(Op.LOAD_CONST, self.fb.const(form_to_value(form)))
            return
        for item in form.items:
            self.compile_expr(item)
        count = len(form.items) // 2 if form.kind == "map" else len(form.items)
        op = {"vector": Op.BUILD_VECTOR, "map": Op.BUILD_MAP, "set": Op.BUILD_SET}[form.kind]
        self.fb.emit(op, count)

    def compile_list(self, form: Seq) -> None:
        if not form.items or _is_data_list(form):
            self.fb.emit(Op.LOAD_CONST, self.fb.const(form_to_value(form)))
            return
        head = form.items[0]
        if isinstance(head, Atom) and isinstance(head.value, Symbol):
            name = head.value.name
            macro = self.macro_for(name) if name != "defmacro" else None
            if macro is not None and not self._shadowed(name):
                expansion = self.expand(macro, form)
                self._expansions += 1  # nesting depth: expansions inside expansions
                try:
                    self.compile_expr(expansion)
                finally:
                    self._expansions -= 1
                return
            special = self.special.get(name)
            if special is not None and not self._shadowed(name):
                special(form)
                return
        self.compile_call(form)

    def _shadowed(self, name: str) -> bool:
        return self.fb.find_local(name, True) is not None

    def compile_call(self, form: Seq) -> None:
        fb = self.fb
        head, args = form.items[0], form.items[1:]
        if isinstance(head, Atom) and isinstance(head.value, Symbol) and head.annotation is None:
            name = head.value.name
            if fb.find_local(name, False) is None and fb.find_free(name) is None:
                for arg in args:
                    self.compile_expr(arg)
                fb.emit(Op.CALL_GLOBAL, fb.site(len(args), name, form.meta))
                return
        self.compile_expr(head)
        for arg in args:
            self.compile_expr(arg)
        called = head.value.name if _is_symbol(head) else None
        fb.emit(Op.CALL, fb.site(len(args), called, form.meta))

    def compile_body(self, forms: Sequence[Form]) -> None:
        """An implicit `do`: every value but the last is dropped; no forms give nil."""
        if not forms:
            self.fb.emit(Op.LOAD_CONST, self.fb.const(None))
            return
        for form in forms[:-1]:
            self.compile_expr(form)
            self.fb.emit(Op.POP)
        self.compile_expr(forms[-1])

    # -- simple special forms ----------------------------------------------------------------
    def compile_do_form(self, form: Seq) -> None:
        self.compile_body(form.items[1:])

    def compile_quote(self, form: Seq) -> None:
        if len(form.items) != 2:
            raise self.error("quote takes exactly one form", form)
        self.fb.emit(Op.LOAD_CONST, self.fb.const(form_to_value(form.items[1])))

    def compile_if(self, form: Seq) -> None:
        if len(form.items) not in (3, 4):
            raise self.error("if takes a test, a then-form and an optional else-form", form)
        fb, otherwise, end = self.fb, Label(), Label()
        self.compile_expr(form.items[1])
        fb.emit(Op.JUMP_IF_FALSE, otherwise)
        self.compile_expr(form.items[2])
        fb.emit(Op.JUMP, end)
        fb.mark(otherwise)
        if len(form.items) == 4:
            self.compile_expr(form.items[3])
        else:
            fb.emit(Op.LOAD_CONST, fb.const(None))
        fb.mark(end)

    def compile_when(self, form: Seq) -> None:
        if len(form.items) < 2:
            raise self.error(f"{head_name(form)} takes a test and a body", form)
        fb, otherwise, end = self.fb, Label(), Label()
        self.compile_expr(form.items[1])
        negate = head_name(form) == "when-not"
        fb.emit(Op.JUMP_IF_FALSE, otherwise)
        self.compile_body([] if negate else form.items[2:])
        fb.emit(Op.JUMP, end)
        fb.mark(otherwise)
        self.compile_body(form.items[2:] if negate else [])
        fb.mark(end)

    def compile_and(self, form: Seq) -> None:
        self._short_circuit(form.items[1:], True, Op.JUMP_IF_FALSE_OR_POP)

    def compile_or(self, form: Seq) -> None:
        self._short_circuit(form.items[1:], False, Op.JUMP_IF_TRUE_OR_POP)

    def _short_circuit(self, operands: Sequence[Form], empty: bool, jump: Op) -> None:
        fb = self.fb
        if not operands:
            fb.emit(Op.LOAD_CONST, fb.const(empty))
            return
        end = Label()
        for operand in operands[:-1]:
            self.compile_expr(operand)
            fb.emit(jump, end)
        self.compile_expr(operands[-1])
        fb.mark(end)

    def compile_cond(self, form: Seq) -> None:
        clauses = form.items[1:]
        if len(clauses) % 2:
            raise self.error("cond takes test/expression pairs", form)
        fb, end = self.fb, Label()
        for test, expr in zip(clauses[0::2], clauses[1::2]):
            nxt = Label()
            self.compile_expr(test)
            fb.emit(Op.JUMP_IF_FALSE, nxt)
            self.compile_expr(expr)
            fb.emit(Op.JUMP, end)
            fb.mark(nxt)
        fb.emit(Op.LOAD_CONST, fb.const(None))
        fb.mark(end)

    def compile_throw(self, form: Seq) -> None:
        if len(form.items) != 2:
            raise self.error("throw takes exactly one value", form)
        self.compile_expr(form.items[1])
        self.fb.emit(Op.THROW)

    def compile_thread(self, form: Seq) -> None:
        """`(-> x (f a) g)` is `(g (f x a))`; `->>` puts x last."""
        if len(form.items) < 2:
            raise self.error("-> and ->> take an initial value", form)
        last = head_name(form) == "->>"
        acc = form.items[1]
        for step in form.items[2:]:
            if isinstance(step, Seq) and step.kind == "list" and step.items:
                items = [*step.items, acc] if last else [step.items[0], acc, *step.items[1:]]
                acc = Seq(step.line, step.col, "list", items, step.meta)
            else:
                acc = Seq(step.line, step.col, "list", [step, acc])
        self.compile_expr(acc)

    def compile_capability_call(self, form: Seq) -> None:
        if len(form.items) < 2 or not isinstance(form.items[1], Atom) or not isinstance(
            form.items[1].value, (Keyword, str)
        ):
            raise self.error("call takes a capability id (:ns.name or \"ns.name\") first", form)
        capability = form.items[1].value
        name = capability.name if isinstance(capability, Keyword) else capability
        for arg in form.items[2:]:
            self.compile_expr(arg)
        self.fb.emit(Op.CALL_CAP, self.fb.site(len(form.items) - 2, name, form.meta))

    # -- let -------------------------------------------------------------------------------
    def compile_let(self, form: Seq) -> None:
        if len(form.items) < 2 or not (isinstance(form.items[1], Seq)
                                       and form.items[1].kind == "vector"):
            raise self.error("let takes a binding vector and a body", form)
        pairs = let_bindings(form.items[1], self.error)
        fb = self.fb
        fb.push_scope()
        declared: dict[str, Var] = {}
        for binding, _ in pairs:  # letrec: names visible (pending) inside earlier fn bodies
            pattern = binding.pattern
            if is_symbol(pattern) and pattern.value.name not in declared | {"_": None}:
                var = declared[pattern.value.name] = fb.new_var(pattern.value.name)
                var.pending = True
                fb.scope.vars[var.name] = var
                fb.emit(P_DECLARE, var)
        for binding, value in pairs:
            pattern = binding.pattern
            self.compile_expr(value)
            if binding.type_form is not None:
                self.emit_check(binding.type_form, f"binding {param_text(pattern)}", pattern)
            if is_symbol(pattern) and pattern.value.name != "_":
                found = declared.get(pattern.value.name)
                var = found if found is not None and found.pending else fb.new_var(
                    pattern.value.name)
                if var is not found:  # a second binding of the same name
                    fb.emit(P_DECLARE, var)
                fb.emit(P_STORE, var)
                var.pending = False
                fb.scope.vars[var.name] = var
            else:
                self.bind_pattern(pattern)
        self.compile_body(form.items[2:])
        fb.pop_scope()


def _is_symbol(form: Form) -> TypeGuard[Atom]:
    return isinstance(form, Atom) and isinstance(form.value, Symbol)


def _is_keyword(form: Form) -> bool:
    return isinstance(form, Atom) and isinstance(form.value, Keyword)


def _is_head(form: Form, name: str) -> TypeGuard[Seq]:
    return (isinstance(form, Seq) and form.kind == "list" and bool(form.items)
            and isinstance(form.items[0], Atom) and form.items[0].value is Symbol(name))


def _is_constant(form: Form) -> bool:
    if isinstance(form, Atom):
        return not isinstance(form.value, Symbol)
    if isinstance(form, Seq) and form.kind != "list":
        return all(_is_constant(item) for item in form.items)
    return False


def _is_data_list(form: Seq) -> bool:
    """`(1 2 3)`: a list that starts with a literal no one can call, and holds only literals,
    is the list itself (the specification writes lists as data this way)."""
    head = form.items[0]
    return (isinstance(head, Atom) and type(head.value) in (int, float, str, bool, type(None))
            and all(_is_constant(item) for item in form.items))


def _toplevel_form(forms: list[Form]) -> Seq:
    line, col = (forms[0].line, forms[0].col) if forms else (1, 1)
    return Seq(line, col, "list", [Atom(line, col, Symbol("do")), *forms])

