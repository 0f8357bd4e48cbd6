"""Definitions and functions: `def`, `defn`, `fn` (and `lambda`, `λ`), their parameters,
their type annotations, and `recur` in a function body."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeGuard

from rtfs import hashing, types
from rtfs.assembler import P_CELLIFY, P_DECLARE, P_LOAD, P_STORE, FunctionBuilder, Var
from rtfs.bytecode import Op, Param
from rtfs.derived import LOOP, check_tail_recur
from rtfs.errors import RtfsSyntaxError
from rtfs.forms import Atom, Form, HintForm, Seq, form_to_value
from rtfs.signatures import Binding, FnSpec, fn_spec, is_symbol, take_binding
from rtfs.values import Keyword, Symbol


class FunctionForms:
    fb: FunctionBuilder
    namespace: str
    units: list[hashing.Unit]
    recur_arity: list[int | None]
    loop_body_arity: int | None
    error: Callable[[str, Form], RtfsSyntaxError]
    compile_expr: Callable[[Form], None]
    compile_body: Callable[[Sequence[Form]], None]
    bind_pattern: Callable[[Form], None]
    gensym: Callable[[Form, str], Atom]

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
        if not spec or not is_symbol(spec[0]):
            raise self.error("defn takes a name, a parameter vector and a body", form)
        name = spec[0].value.name
        self.compile_function(form, [*hints, *spec[1:]], name, bind_self=False, defn=True)
        self.fb.emit(Op.DEF_GLOBAL, self.fb.name_index(name))

    def compile_fn(self, form: Seq) -> None:
        """`(fn name? hint? [params] ...)`; the hint may also come before the name."""
        spec = list(form.items[1:])
        at = 1 if spec and isinstance(spec[0], HintForm) else 0
        name = None
        named = spec[at] if len(spec) > at else None
        if named is not None and is_symbol(named):
            name = named.value.name
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
        slots = [fb.new_var(param_text(b.pattern)) for b in bindings]
        fb.push_scope()
        for binding, var in zip(bindings, slots):
            if is_symbol(binding.pattern):
                fb.scope.vars[binding.pattern.value.name] = var
                fb.emit(P_CELLIFY, var)
        for binding, var in zip(bindings, slots):
            if binding.type_form is not None:
                what = (f"the rest arguments of {label}" if binding is rest else
                        f"argument {param_text(binding.pattern)} of {label}")
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
        return Param(param_text(binding.pattern), self.type_text(binding.type_form))

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


def param_text(form: Form) -> str:
    if is_symbol(form):
        return form.value.name
    from rtfs.printer import to_readable

    return to_readable(form_to_value(form))


def _def_binding(items: Sequence[Form], error: Any) -> tuple[Binding, int]:
    """The name and type of `(def name : T value)`, `(def name:T value)`, `(def name :T
    value)`; the index of the value."""
    return take_binding(items, 1, keyword_types=True, error=error)


def _is_head(form: Form, name: str) -> TypeGuard[Seq]:
    return (isinstance(form, Seq) and form.kind == "list" and bool(form.items)
            and is_symbol(form.items[0], name))
