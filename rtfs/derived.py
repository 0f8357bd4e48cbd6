"""Special forms beyond the core: iteration (`loop`/`recur`, `for`, `dotimes`), `case`,
`if-let`/`when-let`, `try`/`catch`/`finally`, `parallel`, and type definitions (`deftype`,
`defstruct`).

Most are rewritten into core forms; the rewrites use names a program cannot write (they
start with `#`, which the reader never reads as a symbol), so a program that redefines `map`
or `<` does not change what `for` or `dotimes` do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeGuard

from rtfs import types
from rtfs.assembler import P_LOAD, P_STORE, FunctionBuilder, Label
from rtfs.bytecode import Op
from rtfs.errors import RtfsSyntaxError
from rtfs.reader import COLON, Atom, Form, Seq, form_to_value
from rtfs.signatures import (
    Binding,
    head_name,
    is_keyword,
    is_symbol,
    let_bindings,
    take_binding,
)
from rtfs.values import Keyword, Symbol

LOOP, RECUR, FOR, DOTIMES, IS_TYPE = "#loop", "#recur", "#for", "#dotimes", "#is-type"
_CATCH_ALL = frozenset({"Exception", "Error", "Throwable", "RtfsError", "_", "error",
                        "exception", "any", "throwable", "all"})
# recur is allowed in the tail position of these forms' bodies (their own scope ends here)
_NEW_SCOPE = frozenset({"fn", "lambda", "λ", "defn", "defmacro", "loop", "quote", "quasiquote",
                        "deftype", "defstruct", LOOP, FOR, DOTIMES})


def sym(at: Form, name: str) -> Atom:
    return Atom(at.line, at.col, Symbol(name))


def lst(at: Form, *items: Form) -> Seq:
    return Seq(at.line, at.col, "list", list(items))


def vec(at: Form, *items: Form) -> Seq:
    return Seq(at.line, at.col, "vector", list(items))


class DerivedForms:
    fb: FunctionBuilder
    recur_arity: list[int | None]  # per function being compiled: its recur arity, or None
    loop_body_arity: int | None  # set just before compiling the body function of a loop
    error: Callable[[str, Form], RtfsSyntaxError]
    compile_expr: Callable[[Form], None]
    compile_body: Callable[[Sequence[Form]], None]
    compile_function: Callable[..., None]
    bind_pattern: Callable[[Form], None]
    parse_type: Callable[[Form], tuple[object, types.Type]]
    _gensyms: int

    def derived_forms(self) -> dict[str, Callable[[Seq], None]]:
        return {
            "loop": self.compile_loop, "recur": self.compile_recur, LOOP: self.compile_loop_op,
            RECUR: self.compile_recur, "for": self.compile_for, FOR: self.compile_op_call,
            "dotimes": self.compile_dotimes, DOTIMES: self.compile_op_call,
            "case": self.compile_case, "if-let": self.compile_if_let,
            "when-let": self.compile_when_let, "deftype": self.compile_deftype,
            "defstruct": self.compile_defstruct, IS_TYPE: self.compile_is_type,
        }

    def gensym(self, at: Form, base: str) -> Atom:
        self._gensyms += 1
        return sym(at, f"#{base}{self._gensyms}")

    # -- loop / recur --------------------------------------------------------------------------
    def compile_loop(self, form: Seq) -> None:
        """`(loop [p init ...] body...)`: the bindings as in `let`, then the body runs again
        with the values of each `(recur v ...)` in its tail position."""
        if len(form.items) < 2 or not (isinstance(form.items[1], Seq)
                                       and form.items[1].kind == "vector"):
            raise self.error("loop takes a binding vector and a body", form)
        pairs = let_bindings(form.items[1], self.error)
        body = list(form.items[2:])
        check_tail_recur(body, True, self.error)
        self.compile_expr(self.loop_form(form, pairs, body))

    def loop_form(self, at: Form, pairs: list[tuple[Binding, Form]], body: list[Form]) -> Seq:
        """(let [p init ...] (#loop (fn [p ...] body...) v ...)): values are bound like
        `let` (a later init sees earlier names), and each round rebinds the patterns."""
        bindings: list[Form] = []
        params: list[Form] = []
        values: list[Form] = []
        for binding, init in pairs:
            pattern = binding.pattern
            if is_symbol(pattern) and pattern.value.name != "_":
                holder = Atom(pattern.line, pattern.col, pattern.value)
                bindings += [holder, init]
            else:
                holder = self.gensym(pattern, "loop")
                bindings += [holder, init, pattern, holder]
            params.append(holder if is_symbol(pattern) and pattern.value.name != "_"
                          else pattern)
            if binding.type_form is not None:
                params += [Atom(pattern.line, pattern.col, COLON), binding.type_form]
            values.append(holder)
        body_fn = lst(at, sym(at, "fn"), vec(at, *params), *body)
        return lst(at, sym(at, "let"), vec(at, *bindings),
                   lst(at, sym(at, LOOP), body_fn, *values))

    def compile_loop_op(self, form: Seq) -> None:
        """(#loop (fn [p ...] body) v ...): the body function is the target of its recurs."""
        body_fn, values = form.items[1], form.items[2:]
        self.loop_body_arity = len(values)
        self.compile_expr(body_fn)
        for value in values:
            self.compile_expr(value)
        self.fb.emit(Op.LOOP, len(values))

    def compile_recur(self, form: Seq) -> None:
        arity = self.recur_arity[-1] if self.recur_arity else None
        if arity is None:
            raise self.error("recur is only allowed in the tail position of a loop or a "
                             "function body", form)
        args = form.items[1:]
        if len(args) != arity:
            raise self.error(f"recur takes {arity} value(s) here, got {len(args)}", form)
        for arg in args:
            self.compile_expr(arg)
        self.fb.emit(Op.RECUR, len(args))

    # -- for / dotimes ---------------------------------------------------------------------------
    def compile_for(self, form: Seq) -> None:
        """`(for [x xs :when t :let [...] :while t y ys ...] body)`: a vector of the body's
        values for every combination, in order (eager)."""
        if len(form.items) != 3 or not (isinstance(form.items[1], Seq)
                                        and form.items[1].kind == "vector"):
            raise self.error("for takes a binding vector and one body expression", form)
        levels = self._for_levels(form.items[1])
        self.compile_expr(self._for_level(form, levels, form.items[2]))

    def _for_levels(self, vector: Seq) -> list[tuple[Binding, Form, list[tuple[str, Form]]]]:
        items, at = list(vector.items), 0
        levels: list[tuple[Binding, Form, list[tuple[str, Form]]]] = []
        while at < len(items):
            item = items[at]
            if is_keyword(item) and item.value.name in ("when", "let", "while"):
                if not levels or at + 1 >= len(items):
                    raise self.error(f":{item.value.name} follows a binding and takes a form",
                                     item)
                levels[-1][2].append((item.value.name, items[at + 1]))
                at += 2
                continue
            binding, at = take_binding(items, at, keyword_types=False, error=self.error)
            if at >= len(items):
                raise self.error("for bindings come in pattern/collection pairs", vector)
            levels.append((binding, items[at], []))
            at += 1
        if not levels:
            raise self.error("for needs at least one binding", vector)
        return levels

    def _for_level(self, at: Form, levels: list[tuple[Binding, Form, list[tuple[str, Form]]]],
                   body: Form) -> Form:
        if not levels:
            return vec(at, body)
        (binding, coll, modifiers), inner_levels = levels[0], levels[1:]
        inner = self._for_level(at, inner_levels, body)
        for name, expr in reversed(modifiers):
            if name == "let":
                inner = lst(expr, sym(expr, "let"), expr, inner)
            elif name == "when":
                inner = lst(expr, sym(expr, "if"), expr, inner, vec(expr))
            else:  # :while: nil tells the level to stop
                inner = lst(expr, sym(expr, "if"), expr, inner, Atom(expr.line, expr.col, None))
        params: list[Form] = [binding.pattern]
        if binding.type_form is not None:
            params += [Atom(at.line, at.col, COLON), binding.type_form]
        fn = lst(at, sym(at, "fn"), vec(at, *params), inner)
        return lst(at, sym(at, FOR), fn, coll)

    def compile_dotimes(self, form: Seq) -> None:
        """`(dotimes [i n] body...)`: the body with i = 0 .. n-1, for its effects; nil."""
        spec = form.items[1] if len(form.items) > 1 else None
        if not (isinstance(spec, Seq) and spec.kind == "vector" and len(spec.items) == 2
                and is_symbol(spec.items[0])):
            raise self.error("dotimes takes [name count] and a body", form)
        fn = lst(form, sym(form, "fn"), vec(form, spec.items[0]), *form.items[2:])
        self.compile_expr(lst(form, sym(form, DOTIMES), fn, spec.items[1]))

    def compile_op_call(self, form: Seq) -> None:
        """(#for fn coll) and (#dotimes fn n)."""
        name = head_name(form)
        self.compile_expr(form.items[1])
        self.compile_expr(form.items[2])
        self.fb.emit(Op.FOR if name == FOR else Op.DOTIMES)

    # -- case, if-let, when-let ------------------------------------------------------------------
    def compile_case(self, form: Seq) -> None:
        """`(case e test result ... default?)`: tests are literals (not evaluated) or lists
        of literals (any of them), compared with `=`; no match and no default is an error."""
        if len(form.items) < 2:
            raise self.error("case takes an expression and test/result pairs", form)
        fb, end = self.fb, Label()
        self.compile_expr(form.items[1])
        clauses = list(form.items[2:])
        default = clauses.pop() if len(clauses) % 2 else None
        for test, result in zip(clauses[0::2], clauses[1::2]):
            hit, miss = Label(), Label()
            for constant in self._case_constants(test):
                fb.emit(Op.DUP)
                fb.emit(Op.LOAD_CONST, fb.const(constant))
                fb.emit(Op.EQUAL)
                fb.emit(Op.JUMP_IF_TRUE_OR_POP, hit)
            fb.emit(Op.JUMP, miss)
            fb.mark(hit)
            fb.emit(Op.POP)
            fb.emit(Op.POP)
            self.compile_expr(result)
            fb.emit(Op.JUMP, end)
            fb.mark(miss)
        if default is None:
            fb.emit(Op.MATCH_FAIL)
        else:
            fb.emit(Op.POP)
            self.compile_expr(default)
        fb.mark(end)

    def _case_constants(self, test: Form) -> list[Any]:
        if isinstance(test, Seq) and test.kind == "list":
            if not test.items:
                raise self.error("a case test list needs at least one value", test)
            return [form_to_value(item) for item in test.items]
        return [form_to_value(test)]

    def compile_if_let(self, form: Seq) -> None:
        """`(if-let [p e] then else?)`: then with p bound when e is truthy."""
        if len(form.items) not in (3, 4):
            raise self.error("if-let takes [pattern expression], a then-form and an optional "
                             "else-form", form)
        self._conditional_let(form, form.items[2], form.items[3] if len(form.items) == 4
                              else Atom(form.line, form.col, None))

    def compile_when_let(self, form: Seq) -> None:
        """`(when-let [p e] body...)`."""
        if len(form.items) < 2:
            raise self.error("when-let takes [pattern expression] and a body", form)
        self._conditional_let(form, lst(form, sym(form, "do"), *form.items[2:]),
                              Atom(form.line, form.col, None))

    def _conditional_let(self, form: Seq, then: Form, otherwise: Form) -> None:
        spec = form.items[1]
        if not (isinstance(spec, Seq) and spec.kind == "vector"):
            raise self.error(f"{head_name(form)} takes [pattern expression]", form)
        pairs = let_bindings(spec, self.error)
        if len(pairs) != 1:
            raise self.error(f"{head_name(form)} takes one [pattern expression]", spec)
        (binding, value), = pairs
        tmp = self.gensym(form, "test")
        inner = lst(form, sym(form, "let"), vec(form, binding.pattern, tmp), then)
        self.compile_expr(lst(form, sym(form, "let"), vec(form, tmp, value),
                              lst(form, sym(form, "if"), tmp, inner, otherwise)))

    # -- types -----------------------------------------------------------------------------------
    def compile_deftype(self, form: Seq) -> None:
        """`(deftype Name "doc"? T)`: Name may be used as a type from now on (late bound)."""
        items = list(form.items)
        if len(items) == 4 and isinstance(items[2], Atom) and isinstance(items[2].value, str):
            del items[2]  # the docstring
        if len(items) != 3 or not is_symbol(items[1]):
            raise self.error("deftype takes a name and a type", form)
        datum, _ = self.parse_type(items[2])
        self.fb.emit(Op.LOAD_CONST, self.fb.const(datum))
        self.fb.emit(Op.DEF_GLOBAL, self.fb.name_index(types.ALIAS_PREFIX + items[1].value.name))

    def compile_defstruct(self, form: Seq) -> None:
        """`(defstruct Name :field T ...)`: the type Name (a record with those fields, all
        required), the constructor `(Name {:field v ...})` (checks and returns the map), and
        the predicate `(Name? x)`. Its value is the constructor."""
        if len(form.items) < 2 or not is_symbol(form.items[1]) or len(form.items) % 2:
            raise self.error("defstruct takes a name and :field type pairs", form)
        name_form = form.items[1]
        name = name_form.value.name
        fields = list(zip(form.items[2::2], form.items[3::2]))
        for key, _ in fields:
            if not is_keyword(key):
                raise self.error("a defstruct field name is a keyword", key)
        record = vec(form, Atom(form.line, form.col, Keyword("map")),
                     *(vec(key, key, kind) for key, kind in fields))
        x = sym(form, "x")
        self.compile_body([
            lst(form, sym(form, "deftype"), name_form, record),
            lst(form, sym(form, "defn"), sym(form, f"{name}?"), vec(form, x),
                lst(form, sym(form, IS_TYPE), sym(form, name), x)),
            lst(form, sym(form, "defn"), name_form,
                vec(form, x, Atom(form.line, form.col, COLON), sym(form, name)), x),
        ])

    # -- parallel ----------------------------------------------------------------------------
    def compile_parallel(self, form: Seq) -> None:
        """`(parallel [name expr] [name:T expr] ...)`: a vector of the values, in order."""
        for binding in form.items[1:]:
            if not (isinstance(binding, Seq) and binding.kind == "vector"
                    and binding.items and is_symbol(binding.items[0])):
                raise self.error("parallel takes bindings of the form [name expression]", binding)
            pairs = let_bindings(binding, self.error)
            if len(pairs) != 1 or not is_symbol(pairs[0][0].pattern):
                raise self.error("parallel takes bindings of the form [name expression]", binding)
            (target, expr), = pairs
            pattern = target.pattern
            if target.type_form is not None and isinstance(pattern, Atom):  # check in the branch
                name = Atom(pattern.line, pattern.col, pattern.value)
                expr = lst(expr, sym(expr, "let"),
                           vec(binding, name, Atom(expr.line, expr.col, COLON),
                               target.type_form, expr), name)
            thunk = lst(expr, sym(expr, "fn"), vec(expr), expr)
            self.compile_function(thunk, thunk.items[1:], None, bind_self=False)
        self.fb.emit(Op.PARALLEL, len(form.items) - 1)

    # -- try ---------------------------------------------------------------------------------
    def compile_try(self, form: Seq) -> None:
        """`(try body... (catch Kind name? body...)... (finally body...)?)`."""
        body: list[Form] = []
        catches: list[Seq] = []
        final: Seq | None = None
        for item in form.items[1:]:
            if _is_head(item, "catch"):
                if final is not None or len(item.items) < 2:
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
        self.compile_body(list(final.items[1:]))
        fb.emit(Op.POP)
        fb.emit(Op.JUMP, end)
        fb.mark(on_error)
        self.compile_body(list(final.items[1:]))
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
            fb.emit(Op.ERR_MATCHES, fb.const(self.error_kind(clause.items[1])))
            fb.emit(Op.JUMP_IF_FALSE, nxt)
            fb.push_scope()
            binding, handler_body = _catch_binding(clause)
            if binding is None:
                fb.emit(Op.POP)
            else:
                self.bind_pattern(binding)
            self.compile_body(handler_body)
            fb.pop_scope()
            fb.emit(Op.JUMP, end)
            fb.mark(nxt)
        fb.emit(Op.RERAISE)
        fb.mark(end)

    def error_kind(self, form: Form) -> str:
        """The kind a catch clause names: `Exception` (any), an error kind or class name
        (`ArithmeticError`, `RuntimeError`), or a keyword (`:error` any, `:type-error`,
        `:division-by-zero`, ...)."""
        if isinstance(form, Atom) and isinstance(form.value, (Symbol, Keyword)):
            name = form.value.name
            if name in _CATCH_ALL:
                return "*"
            if isinstance(form.value, Keyword):
                return "".join(part.capitalize() for part in name.split("-"))
            return name
        raise self.error("catch takes an error kind such as Exception or ArithmeticError", form)

    def emit_type_test(self, type_form: Form) -> None:
        """Push whether the value on top of the stack (which stays) has the type."""
        datum, _ = self.parse_type(type_form)
        self.fb.emit(Op.IS_TYPE, self.fb.const(datum))

    def compile_is_type(self, form: Seq) -> None:
        """(#is-type T x): whether x has type T."""
        fb = self.fb
        self.compile_expr(form.items[2])
        self.emit_type_test(form.items[1])
        result = fb.new_var("#is-type")
        fb.emit(P_STORE, result)
        fb.emit(Op.POP)
        fb.emit(P_LOAD, result)


def _is_head(form: Form, name: str) -> TypeGuard[Seq]:
    return (isinstance(form, Seq) and form.kind == "list" and bool(form.items)
            and is_symbol(form.items[0], name))


def _catch_binding(clause: Seq) -> tuple[Form | None, list[Form]]:
    """`(catch Kind e body...)` binds e; `(catch Kind body...)` binds nothing (the first
    body form is not a name); `(catch Kind {:keys [message]} body...)` destructures."""
    rest = list(clause.items[2:])
    if not rest:
        return None, []
    first = rest[0]
    if is_symbol(first):
        return first, rest[1:]
    if isinstance(first, Seq) and first.kind in ("map", "vector") and len(rest) > 1:
        return first, rest[1:]
    return None, rest


def check_tail_recur(forms: Sequence[Form], tail: bool,
                     error: Callable[[str, Form], RtfsSyntaxError]) -> bool:
    """Refuse a `recur` that is not in tail position; whether there is one at all."""
    found = False
    for index, form in enumerate(forms):
        found |= _recur_in(form, tail and index == len(forms) - 1, error)
    return found


def _recur_in(form: Form, tail: bool, error: Callable[[str, Form], RtfsSyntaxError]) -> bool:
    if not isinstance(form, Seq):
        return False
    if form.kind != "list" or not form.items:
        return check_tail_recur(form.items, False, error)
    head = form.items[0]
    name = head.value.name if is_symbol(head) else None
    args = list(form.items[1:])
    if name == "recur":
        if not tail:
            raise error("recur is only allowed in tail position", form)
        check_tail_recur(args, False, error)
        return True
    if name in _NEW_SCOPE:
        return False
    if name == "if":
        return check_tail_recur(args[:1], False, error) | check_tail_recur(
            args[1:2], tail, error) | check_tail_recur(args[2:3], tail, error)
    if name in ("do", "when", "when-not", "let", "if-let", "when-let", "and", "or"):
        leading = args[:1] if name in ("when", "when-not", "let", "if-let", "when-let") else []
        rest = args[len(leading):]
        found = check_tail_recur(leading, False, error)
        if name == "if-let":  # both branches are in tail position
            return found | check_tail_recur(rest[:1], tail, error) | check_tail_recur(
                rest[1:2], tail, error)
        return found | check_tail_recur(rest, tail, error)
    if name in ("cond", "case", "match"):
        return _recur_in_clauses(name, args, tail, error)
    return check_tail_recur(args, False, error)


def _recur_in_clauses(name: str, args: list[Form], tail: bool,
                      error: Callable[[str, Form], RtfsSyntaxError]) -> bool:
    if name == "cond":
        tests, results = args[0::2], args[1::2]
        return check_tail_recur(tests, False, error) | any(
            check_tail_recur([r], tail, error) for r in results)
    found = check_tail_recur(args[:1], False, error)
    rest = args[1:]
    if name == "case":
        results = rest[1::2] + (rest[-1:] if len(rest) % 2 else [])
        return found | any(check_tail_recur([r], tail, error) for r in results)
    found_any = found
    at = 0
    while at < len(rest):
        if at + 3 < len(rest) and is_symbol(rest[at + 1], "when"):
            found_any |= check_tail_recur([rest[at + 2]], False, error)
            found_any |= check_tail_recur([rest[at + 3]], tail, error)
            at += 4
        else:
            found_any |= check_tail_recur(rest[at + 1:at + 2], tail, error)
            at += 2
    return found_any
