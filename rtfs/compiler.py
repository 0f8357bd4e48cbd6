"""Compiler: forms -> `Code`.

`compile_program(forms)` compiles the top level of a program; every `fn`/`defn` inside
becomes a child `Code` among its constants. Scoping is lexical: locals live in frame slots,
locals a closure captures live in cells, and everything else is a global looked up when the
call runs. `let` is sequential, except that a binding's name is already visible inside the
bodies of functions bound earlier in the same `let` (so local functions can recurse, also
mutually). Special forms with a bad shape raise `RtfsSyntaxError` with the form's position.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rtfs import hashing
from rtfs.assembler import P_CELLIFY, P_DECLARE, P_LOAD, P_STORE, FunctionBuilder, Label, Var
from rtfs.bytecode import Code, Op, Param
from rtfs.errors import RtfsSyntaxError
from rtfs.patterns import PatternCompiler
from rtfs.reader import Atom, Form, HintForm, Seq, form_to_value
from rtfs.values import DelegationHint, Keyword, Symbol

SourceResolver = Callable[[str], "bytes | None"]

_CATCH_ALL = frozenset({"Exception", "Error", "Throwable", "RtfsError", "_", ":error"})


def compile_program(forms: list[Form], *, namespace: str = "user",
                    resolve_source: SourceResolver | None = None) -> Code:
    """Compile top-level forms into one `Code` whose value is the last form's.

    `resolve_source(name)` gives the source hash of a user function defined earlier in the
    environment (for the Merkle-style source hashes of functions that call it).
    """
    compiler = Compiler(namespace)
    code = compiler.compile_toplevel(forms)
    hashing.assign_source_hashes(compiler.units, resolve_source or (lambda name: None),
                                 forms=forms)
    return code


def compile_top_level_form(hashes: hashing.ProgramHashes, index: int, *,
                           namespace: str = "user") -> Code:
    """Compile top-level form `index` of the program `hashes` was computed for
    (`rtfs.hashing.program_source_hashes`), alone, so that it can run before the forms after
    it are compiled: every function it defines carries its program-level source hash and
    deps (forward references included), other code the hashes of what its names mean at
    that point of the program."""
    form = hashes.forms[index]
    compiler = Compiler(namespace)
    code = compiler.compile_toplevel([form])
    hashing.assign_source_hashes(compiler.units, hashes.resolver(index), forms=[form],
                                 overrides=hashes.overrides(index))
    return code


class Compiler(PatternCompiler):
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.fb: FunctionBuilder = FunctionBuilder(None, "<toplevel>", f"{namespace}/<toplevel>")
        self.units: list[hashing.Unit] = []
        self.special: dict[str, Callable[[Seq], None]] = {
            "def": self.compile_def, "defn": self.compile_defn, "fn": self.compile_fn,
            "let": self.compile_let, "if": self.compile_if, "do": self.compile_do_form,
            "match": self.compile_match, "try": self.compile_try, "parallel": self.compile_parallel,
            "call": self.compile_capability_call, "quote": self.compile_quote,
            "and": self.compile_and, "or": self.compile_or, "cond": self.compile_cond,
            "when": self.compile_when, "when-not": self.compile_when, "throw": self.compile_throw,
            "->": self.compile_thread, "->>": self.compile_thread,
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
        if not form.items:
            self.fb.emit(Op.LOAD_CONST, self.fb.const(form_to_value(form)))
            return
        head = form.items[0]
        if isinstance(head, Atom) and isinstance(head.value, Symbol):
            special = self.special.get(head.value.name)
            if special is not None and not self._shadowed(head.value.name):
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
        if len(form.items) != 3 or not _is_symbol(form.items[1]):
            raise self.error("def takes a name and a value", form)
        name = form.items[1].value.name
        value = form.items[2]
        if _is_head(value, "fn"):
            self.compile_function(value, value.items[1:], name, bind_self=False,
                                  unit_form=form)
        else:
            self.compile_expr(value)
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

    def compile_function(self, form: Seq, spec: list[Form], name: str | None, *,
                         bind_self: bool, defn: bool = False, unit_form: Seq | None = None
                         ) -> None:
        """Compile a function from `[hint] [docstring] [params] [:return-type] body...`."""
        hint, spec = _take_hint(spec)
        if spec and isinstance(spec[0], Atom) and isinstance(spec[0].value, str) and len(spec) > 1:
            spec = spec[1:]  # docstring
        if not spec or not (isinstance(spec[0], Seq) and spec[0].kind == "vector"):
            raise self.error("a function needs a parameter vector", form)
        params_form, body = spec[0], spec[1:]
        return_type = None
        if len(body) > 1 and _is_keyword(body[0]):
            return_type, body = body[0].value.name, body[1:]
        outer = self.fb
        qualname = self._qualname(name, outer, defn)
        fb = self.fb = FunctionBuilder(outer, name or "fn", qualname)
        fb.line, fb.col = form.line, form.col
        try:
            params, rest = self.compile_params(params_form)
            if bind_self and name is not None:
                self.bind_self(name)
            self.compile_body(body)
            fb.emit(Op.RETURN)
            code = fb.assemble(params=params, rest=rest, return_type=return_type, hint=hint)
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

    def compile_params(self, params_form: Seq) -> tuple[tuple[Param, ...], Param | None]:
        """Bind parameters to slots 0..n-1 (and n for `& rest`), destructuring after."""
        fb = self.fb
        items = params_form.items
        names = [i.value.name for i in items if _is_symbol(i) and i.value.name not in ("&", "_")]
        if len(names) != len(set(names)):
            raise self.error("a parameter name appears twice", params_form)
        positional, rest_form = _split_rest(items, params_form, self.error)
        slots = [fb.new_var(_param_text(p)) for p in positional]
        rest_var = fb.new_var(_param_text(rest_form)) if rest_form is not None else None
        fb.push_scope()
        bound = list(zip(positional, slots))
        if rest_form is not None and rest_var is not None:
            bound.append((rest_form, rest_var))
        for pattern, var in bound:
            if _is_symbol(pattern):
                fb.scope.vars[pattern.value.name] = var
                fb.emit(P_CELLIFY, var)
        for pattern, var in bound:
            if not _is_symbol(pattern):
                fb.emit(P_LOAD, var)
                self.bind_pattern(pattern)
        params = tuple(Param(_param_text(p), _annotation(p)) for p in positional)
        rest = Param(_param_text(rest_form), _annotation(rest_form)) if rest_form else None
        return params, rest

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
        bindings = form.items[1].items
        if len(bindings) % 2:
            raise self.error("let bindings come in pattern/value pairs", form.items[1])
        fb = self.fb
        fb.push_scope()
        pairs = list(zip(bindings[0::2], bindings[1::2]))
        declared: dict[str, Var] = {}
        for pattern, _ in pairs:  # letrec: names visible (pending) inside earlier fn bodies
            if _is_symbol(pattern) and pattern.value.name not in declared | {"_": None}:
                var = declared[pattern.value.name] = fb.new_var(pattern.value.name)
                var.pending = True
                fb.scope.vars[var.name] = var
                fb.emit(P_DECLARE, var)
        for pattern, value in pairs:
            self.compile_expr(value)
            if _is_symbol(pattern) and pattern.value.name != "_":
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

    # -- parallel --------------------------------------------------------------------------
    def compile_parallel(self, form: Seq) -> None:
        for binding in form.items[1:]:
            if not (isinstance(binding, Seq) and binding.kind == "vector"
                    and len(binding.items) == 2 and _is_symbol(binding.items[0])):
                raise self.error("parallel takes bindings of the form [name expression]", binding)
            name, expr = binding.items
            thunk = Seq(expr.line, expr.col, "list", [
                Atom(expr.line, expr.col, Symbol("fn")),
                Seq(expr.line, expr.col, "vector", []), expr])
            self.compile_function(thunk, thunk.items[1:], None, bind_self=False)
        self.fb.emit(Op.PARALLEL, len(form.items) - 1)

    # -- try -------------------------------------------------------------------------------
    def compile_try(self, form: Seq) -> None:
        body, catches, final = [], [], None
        for item in form.items[1:]:
            if _is_head(item, "catch"):
                if final is not None or len(item.items) < 3 or not _is_symbol(item.items[2]):
                    raise self.error("catch takes an error kind, a name and a body", item)
                catches.append(item)
            elif _is_head(item, "finally"):
                if final is not None:
                    raise self.error("try takes at most one finally", item)
                final = item
            elif catches or final is not None:
                raise self.error("try body forms come before catch and finally", item)
            else:
                body.append(item)
        if final is None:
            self._compile_try_catch(body, catches)
            return
        fb, on_error, end = self.fb, Label(), Label()
        fb.emit(Op.SETUP_TRY, on_error)
        self._compile_try_catch(body, catches)
        fb.emit(Op.POP_TRY)
        self.compile_body(final.items[1:])
        fb.emit(Op.POP)
        fb.emit(Op.JUMP, end)
        fb.mark(on_error)
        self.compile_body(final.items[1:])
        fb.emit(Op.POP)
        fb.emit(Op.RERAISE)
        fb.mark(end)

    def _compile_try_catch(self, body: list[Form], catches: list[Seq]) -> None:
        fb = self.fb
        if not catches:
            self.compile_body(body)
            return
        handler, end = Label(), Label()
        fb.emit(Op.SETUP_TRY, handler)
        self.compile_body(body)
        fb.emit(Op.POP_TRY)
        fb.emit(Op.JUMP, end)
        fb.mark(handler)
        for clause in catches:
            nxt = Label()
            fb.emit(Op.DUP)
            fb.emit(Op.ERR_MATCHES, fb.const(_error_kind(clause.items[1], self.error)))
            fb.emit(Op.JUMP_IF_FALSE, nxt)
            fb.push_scope()
            self.bind_pattern(clause.items[2])
            self.compile_body(clause.items[3:])
            fb.pop_scope()
            fb.emit(Op.JUMP, end)
            fb.mark(nxt)
        fb.emit(Op.RERAISE)
        fb.mark(end)


def _take_hint(spec: list[Form]) -> tuple[DelegationHint | None, list[Form]]:
    hints = [item for item in spec if isinstance(item, HintForm)]
    if len(hints) > 1:
        raise RtfsSyntaxError("a function takes at most one delegation hint",
                              hints[1].line, hints[1].col)
    if hints and spec.index(hints[0]) > 1:
        raise RtfsSyntaxError("a delegation hint goes before the parameter vector",
                              hints[0].line, hints[0].col)
    return (hints[0].hint if hints else None), [s for s in spec if not isinstance(s, HintForm)]


def _split_rest(items: list[Form], where: Form, error: Any) -> tuple[list[Form], Form | None]:
    for i, item in enumerate(items):
        if _is_symbol(item) and item.value.name == "&":
            if len(items) != i + 2:
                raise error("& is followed by exactly one rest parameter", where)
            return items[:i], items[i + 1]
    return items, None


def _param_text(form: Form) -> str:
    if _is_symbol(form):
        return form.value.name
    from rtfs.printer import to_readable

    return to_readable(form_to_value(form))


def _annotation(form: Form) -> str | None:
    return form.annotation if isinstance(form, Atom) else None


def _error_kind(form: Form, error: Any) -> str:
    if isinstance(form, Atom) and isinstance(form.value, (Symbol, Keyword)):
        name = form.value.name
        return "*" if name in _CATCH_ALL or f":{name}" in _CATCH_ALL else name
    raise error("catch takes an error kind such as Exception or ArithmeticError", form)


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


def _toplevel_form(forms: list[Form]) -> Seq:
    line, col = (forms[0].line, forms[0].col) if forms else (1, 1)
    return Seq(line, col, "list", [Atom(line, col, Symbol("do")), *forms])

