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
from typing import Any

from rtfs import hashing, types
from rtfs.assembler import P_CELLIFY, P_DECLARE, P_LOAD, P_STORE, FunctionBuilder, Label, Var
from rtfs.bytecode import Code, Op, Param
from rtfs.derived import LOOP, DerivedForms, check_tail_recur
from rtfs.errors import RtfsSyntaxError
from rtfs.macros import MacroForms, MacroTable
from rtfs.patterns import PatternCompiler
from rtfs.reader import COLON, Atom, Form, HintForm, Seq, form_to_value
from rtfs.signatures import Binding, FnSpec, fn_spec, is_symbol, let_bindings, take_binding
from rtfs.values import Keyword, Symbol

SourceResolver = Callable[[str], "bytes | None"]

def compile_program(forms: list[Form], *, namespace: str = "user",
                    resolve_source: SourceResolver | None = None,
                    macros: MacroTable | None = None) -> Code:
    """Compile top-level forms into one `Code` whose value is the last form's.

    `resolve_source(name)` gives the source hash of a user function defined earlier in the
    environment (for the Merkle-style source hashes of functions that call it). `macros` is
    the table of macros earlier compilations defined (and this one adds to); by default the
    program's own.
    """
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


class Compiler(PatternCompiler, DerivedForms, MacroForms):
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
        name = head.value.name if _is_symbol(head) else None
        fb.emit(Op.CALL, fb.site(len(args), name, form.meta))

    def compile_body(self, forms: list[Form]) -> None:
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
            raise self.error(f"{form.items[0].value.name} takes a test and a body", form)
        fb, otherwise, end = self.fb, Label(), Label()
        self.compile_expr(form.items[1])
        negate = form.items[0].value.name == "when-not"
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

    def _short_circuit(self, operands: list[Form], empty: bool, jump: Op) -> None:
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
        last = form.items[0].value.name == "->>"
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

    # -- definitions and functions -----------------------------------------------------------
    def compile_def(self, form: Seq) -> None:
        """`(def name value)`, with an optional type: `(def name : T value)`, `(def name:T
        value)` or `(def name :T value)`."""
        items = form.items
        if len(items) < 3 or not is_symbol(items[1]):
            raise self.error("def takes a name and a value", form)
        binding, at = Binding(items[1]), 2
        if len(items) > 3:
            binding, at = _def_binding(items, self.error)
        if at != len(items) - 1:
            raise self.error("def takes a name, an optional type and a value", form)
        name = items[1].value.name
        value = items[at]
        if _is_head(value, "fn") or _is_head(value, "lambda"):
            self.compile_function(value, value.items[1:], name, bind_self=False,
                                  unit_form=form)
        else:
            self.compile_expr(value)
        if binding.type_form is not None:
            self.emit_check(binding.type_form, f"def {name}", binding.pattern)
        self.fb.emit(Op.DEF_GLOBAL, self.fb.name_index(name))

    def compile_defn(self, form: Seq) -> None:
        hints = [item for item in form.items[1:3] if isinstance(item, HintForm)]
        spec = [item for item in form.items[1:] if not any(item is h for h in hints)]
        if not spec or not _is_symbol(spec[0]):
            raise self.error("defn takes a name, a parameter vector and a body", form)
        name = spec[0].value.name
        self.compile_function(form, [*hints, *spec[1:]], name, bind_self=False, defn=True)
        self.fb.emit(Op.DEF_GLOBAL, self.fb.name_index(name))

    def compile_fn(self, form: Seq) -> None:
        """`(fn name? hint? [params] ...)`; the hint may also come before the name."""
        spec = form.items[1:]
        at = 1 if spec and isinstance(spec[0], HintForm) else 0
        name = None
        if len(spec) > at and _is_symbol(spec[at]):
            name = spec[at].value.name
            spec = spec[:at] + spec[at + 1:]
        self.compile_function(form, spec, name, bind_self=name is not None)

    def compile_function(self, form: Seq, spec: Sequence[Form], name: str | None, *,
                         bind_self: bool, defn: bool = False, unit_form: Seq | None = None
                         ) -> None:
        """Compile a function from its spec (see `rtfs.signatures.fn_spec`)."""
        shape = fn_spec(form, spec, self.error)
        arity, self.loop_body_arity = self.loop_body_arity, None
        if arity is None and check_tail_recur(shape.body, True, self.error):
            shape = self._recur_to_loop(form, shape)  # (fn [a b] ... (recur x y))
        self.recur_arity.append(arity)
        try:
            self._compile_function(form, shape, name, bind_self=bind_self, defn=defn,
                                   unit_form=unit_form)
        finally:
            self.recur_arity.pop()

    def _recur_to_loop(self, form: Seq, shape: FnSpec) -> FnSpec:
        """A function whose body recurs: its body becomes a loop over its parameters."""
        holders = [self.gensym(b.pattern, "arg") for b in shape.params]
        inner_params: list[Form] = [b.pattern for b in shape.params]
        if shape.rest is not None:
            holders.append(self.gensym(shape.rest.pattern, "rest"))
            inner_params.append(shape.rest.pattern)
        inner = Seq(form.line, form.col, "list", [Atom(form.line, form.col, Symbol("fn")),
                                                  Seq(form.line, form.col, "vector",
                                                      inner_params), *shape.body])
        loop = Seq(form.line, form.col, "list", [Atom(form.line, form.col, Symbol(LOOP)),
                                                 inner, *holders])
        params = [Binding(h, b.type_form) for h, b in zip(holders, shape.params)]
        rest = Binding(holders[-1], shape.rest.type_form) if shape.rest is not None else None
        return FnSpec(shape.hint, params, rest, shape.return_type, [loop], shape.params_form,
                      shape.attributes, shape.doc)

    def _compile_function(self, form: Seq, shape: FnSpec, name: str | None, *,
                          bind_self: bool, defn: bool, unit_form: Seq | None) -> None:
        outer = self.fb
        qualname = self._qualname(name, outer, defn)
        fb = self.fb = FunctionBuilder(outer, name or "fn", qualname)
        fb.line, fb.col = form.line, form.col
        label = name or "fn"
        try:
            params, rest = self.compile_params(shape.params, shape.rest, shape.params_form,
                                               label)
            if bind_self and name is not None:
                self.bind_self(name)
            self.compile_body(shape.body)
            if shape.return_type is not None:
                fb.line, fb.col = shape.return_type.line, shape.return_type.col
                self.emit_check(shape.return_type, f"the result of {label}", shape.return_type)
            fb.emit(Op.RETURN)
            code = fb.assemble(params=params, rest=rest,
                               return_type=self.type_text(shape.return_type), hint=shape.hint)
        finally:
            self.fb = outer
        unit_form = unit_form or form  # `(def f (fn ...))` is hashed as the def form
        self.units.append(hashing.Unit(code, unit_form, hashing.symbols_in(unit_form),
                                       name if defn or unit_form is not form else None))
        for source in fb.free_sources:
            if isinstance(source, Var):
                outer.emit(Op.LOAD_CELLREF, source.slot)
            else:
                outer.emit(Op.LOAD_FREEREF, source)
        outer.emit(Op.MAKE_CLOSURE, outer.const(code))

    def _qualname(self, name: str | None, outer: FunctionBuilder, defn: bool) -> str:
        if defn or outer.parent is None and name is not None:
            return f"{self.namespace}/{name}"
        outer.children += 1
        base = outer.qualname if outer.parent is not None else self.namespace
        return f"{base}/{name or 'fn'}#{outer.children}"

    def compile_params(self, positional: list[Binding], rest: Binding | None,
                       params_form: Form, label: str
                       ) -> tuple[tuple[Param, ...], Param | None]:
        """Bind parameters to slots 0..n-1 (and n for `& rest`), check their types, then
        destructure."""
        fb = self.fb
        bindings = [*positional, *([rest] if rest is not None else [])]
        names = [b.pattern.value.name for b in bindings
                 if is_symbol(b.pattern) and b.pattern.value.name != "_"]
        if len(names) != len(set(names)):
            raise self.error("a parameter name appears twice", params_form)
        slots = [fb.new_var(_param_text(b.pattern)) for b in bindings]
        fb.push_scope()
        for binding, var in zip(bindings, slots):
            if is_symbol(binding.pattern):
                fb.scope.vars[binding.pattern.value.name] = var
                fb.emit(P_CELLIFY, var)
        for binding, var in zip(bindings, slots):
            if binding.type_form is not None:
                what = (f"the rest arguments of {label}" if binding is rest else
                        f"argument {_param_text(binding.pattern)} of {label}")
                fb.line, fb.col = binding.pattern.line, binding.pattern.col
                fb.emit(P_LOAD, var)
                self.emit_check(binding.type_form, what, binding.pattern, each=binding is rest)
                fb.emit(Op.POP)
        for binding, var in zip(bindings, slots):
            if not is_symbol(binding.pattern):
                fb.emit(P_LOAD, var)
                self.bind_pattern(binding.pattern)
        params = tuple(self._param(b) for b in positional)
        return params, (self._param(rest) if rest is not None else None)

    def _param(self, binding: Binding) -> Param:
        return Param(_param_text(binding.pattern), self.type_text(binding.type_form))

    # -- type annotations --------------------------------------------------------------------
    def parse_type(self, type_form: Form) -> tuple[object, types.Type]:
        """The datum and the parsed type of an annotation; a syntax error where it is
        written when it is not a type."""
        datum = form_to_value(type_form)
        try:
            return datum, types.parse(datum)
        except types.TypeExpressionError as err:
            raise self.error(err.message, type_form) from None

    def type_text(self, type_form: Form | None) -> str | None:
        """The canonical text of an annotation (what interface hashes cover)."""
        if type_form is None:
            return None
        return self.parse_type(type_form)[1].text

    def emit_check(self, type_form: Form, label: str, at: Form, *, each: bool = False) -> None:
        """Check the value on top of the stack (which stays) against an annotation."""
        datum, parsed = self.parse_type(type_form)
        if parsed is types.ANY:
            return
        fb = self.fb
        saved = fb.line, fb.col
        fb.line, fb.col = at.line, at.col
        spec = (label, datum, Keyword("each")) if each else (label, datum)
        fb.emit(Op.CHECK_TYPE, fb.const(spec))
        fb.line, fb.col = saved

    def bind_self(self, name: str) -> None:
        fb = self.fb
        var = fb.new_var(name)
        fb.push_scope().vars[name] = var
        fb.emit(Op.LOAD_SELF)
        fb.emit(P_DECLARE, var)
        fb.emit(P_STORE, var)

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
                self.emit_check(binding.type_form, f"binding {_param_text(pattern)}", pattern)
            if is_symbol(pattern) and pattern.value.name != "_":
                var = declared.get(pattern.value.name)
                if var is None or not var.pending:  # a second binding of the same name
                    var = fb.new_var(pattern.value.name)
                    fb.emit(P_DECLARE, var)
                fb.emit(P_STORE, var)
                var.pending = False
                fb.scope.vars[var.name] = var
            else:
                self.bind_pattern(pattern)
        self.compile_body(form.items[2:])
        fb.pop_scope()


def _param_text(form: Form) -> str:
    if _is_symbol(form):
        return form.value.name
    from rtfs.printer import to_readable

    return to_readable(form_to_value(form))


def _is_symbol(form: Form) -> bool:
    return isinstance(form, Atom) and isinstance(form.value, Symbol)


def _is_keyword(form: Form) -> bool:
    return isinstance(form, Atom) and isinstance(form.value, Keyword)


def _is_head(form: Form, name: str) -> bool:
    return (isinstance(form, Seq) and form.kind == "list" and bool(form.items)
            and isinstance(form.items[0], Atom) and form.items[0].value is Symbol(name))


def _is_constant(form: Form) -> bool:
    if isinstance(form, Atom):
        return not isinstance(form.value, Symbol)
    if isinstance(form, Seq) and form.kind != "list":
        return all(_is_constant(item) for item in form.items)
    return False


def _def_binding(items: Sequence[Form], error: Any) -> tuple[Binding, int]:
    """The name and type of `(def name : T value)`, `(def name:T value)`, `(def name :T
    value)`; the index of the value."""
    return take_binding(items, 1, keyword_types=True, error=error)


def _is_data_list(form: Seq) -> bool:
    """`(1 2 3)`: a list that starts with a literal no one can call, and holds only literals,
    is the list itself (the specification writes lists as data this way)."""
    head = form.items[0]
    return (isinstance(head, Atom) and type(head.value) in (int, float, str, bool, type(None))
            and all(_is_constant(item) for item in form.items))


def _toplevel_form(forms: list[Form]) -> Seq:
    line, col = (forms[0].line, forms[0].col) if forms else (1, 1)
    return Seq(line, col, "list", [Atom(line, col, Symbol("do")), *forms])

