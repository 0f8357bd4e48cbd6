"""Macros: `defmacro`, quasiquote (`` ` ``), unquote (`~`) and unquote-splicing (`~@`).

A macro is a function from code (as data) to code, run by the compiler when it meets a call
of the macro's name. `(defmacro name [params] body...)` compiles the function and runs it at
once in a compile-time VM that has the standard library only: a macro may use builtins and
other macros, not functions the program defines (they do not exist yet when it compiles).
Macros defined by a program live in the `MacroTable` its compilations share (pass the same
table to compile a program form by form). A macro can name any form, special forms
included; a local binding of the same name hides it.

Quasiquote builds data: symbols stay symbols (`x#` becomes a fresh name unique to that
quasiquote), `~e` is e's value, `~@e` splices the items of e.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rtfs.assembler import FunctionBuilder
from rtfs.bytecode import Code, Op
from rtfs.errors import RtfsError, RtfsSyntaxError
from rtfs.reader import UNQUOTE, UNQUOTE_SPLICING, Atom, ConstSeq, Form, Seq, form_to_value
from rtfs.signatures import head_name
from rtfs.values import Closure, Keyword, Map, RList, Symbol, TaggedLiteral, set_items

MAX_EXPANSIONS = 256  # macro calls expanding into macro calls, one inside another


class MacroTable:
    """The macros a program has defined, shared by the compilations of its forms."""

    def __init__(self) -> None:
        self.macros: dict[str, Closure] = {}
        self._vm: Any = None

    def vm(self) -> Any:
        if self._vm is None:
            import io

            from rtfs.vm import VM

            self._vm = VM(out=io.StringIO())  # compile time: what a macro prints goes nowhere
        return self._vm


class MacroForms:
    fb: FunctionBuilder
    macros: MacroTable
    namespace: str
    error: Callable[[str, Form], RtfsSyntaxError]
    compile_expr: Callable[[Form], None]
    compile_toplevel: Callable[[list[Form]], Code]
    _expansions: int
    _gensyms: int

    def macro_forms(self) -> dict[str, Callable[[Seq], None]]:
        return {"defmacro": self.compile_defmacro, "quasiquote": self.compile_quasiquote,
                "unquote": self._misplaced, "unquote-splicing": self._misplaced}

    def _misplaced(self, form: Seq) -> None:
        raise self.error(f"{head_name(form)} (~) belongs inside a quasiquote (`)",
                         form)

    # -- defining and expanding ----------------------------------------------------------------
    def compile_defmacro(self, form: Seq) -> None:
        """`(defmacro name "doc"? [params] body...)`: define the macro now; its value is nil."""
        items = form.items
        if len(items) < 3 or not (isinstance(items[1], Atom)
                                  and isinstance(items[1].value, Symbol)):
            raise self.error("defmacro takes a name, a parameter vector and a body", form)
        name = items[1].value.name
        fn_form = Seq(form.line, form.col, "list",
                      [Atom(form.line, form.col, Symbol("fn")), items[1], *items[2:]])
        compiler = type(self)(self.namespace, macros=self.macros)  # type: ignore[call-arg]
        code: Code = compiler.compile_toplevel([fn_form])
        try:
            macro = self.macros.vm().run(code)
        except RtfsError as err:
            raise self.error(f"defmacro {name}: {err.message}", form) from err
        self.macros.macros[name] = macro
        self.fb.emit(Op.LOAD_CONST, self.fb.const(None))

    def macro_for(self, name: str) -> Closure | None:
        return self.macros.macros.get(name)

    def expand(self, macro: Closure, form: Seq) -> Form:
        """The code a macro call stands for."""
        if self._expansions >= MAX_EXPANSIONS:
            raise self.error("macro expansion nested too deeply (a macro expanding into "
                             "itself?)", form)
        args = [form_to_value(item) for item in form.items[1:]]
        try:
            result = self.macros.vm().call(macro, args, route=False)
        except RtfsError as err:
            raise self.error(f"macro {macro.name}: {err.message}", form) from err
        return value_to_form(result, form, self.error)

    # -- quasiquote ----------------------------------------------------------------------------
    def compile_quasiquote(self, form: Seq) -> None:
        if len(form.items) != 2:
            raise self.error("quasiquote (`) takes exactly one form", form)
        self._quasi(form.items[1], {})

    def _quasi(self, form: Form, gensyms: dict[str, Symbol]) -> None:
        fb = self.fb
        if isinstance(form, Atom):
            value = form.value
            if isinstance(value, Symbol) and value.name.endswith("#") and len(value.name) > 1:
                if value.name not in gensyms:
                    self._gensyms += 1
                    gensyms[value.name] = Symbol(f"{value.name[:-1]}__{self._gensyms}__auto")
                value = gensyms[value.name]
            fb.emit(Op.LOAD_CONST, fb.const(value))
            return
        if not isinstance(form, Seq):
            raise self.error("a delegation hint cannot be quasiquoted", form)
        if isinstance(form, ConstSeq):
            fb.emit(Op.LOAD_CONST, fb.const(form.value))
            return
        if _head_is(form, UNQUOTE):
            self._one_arg(form)
            self.compile_expr(form.items[1])
            return
        if _head_is(form, UNQUOTE_SPLICING):
            raise self.error("~@ splices into a list, vector, map or set, not on its own", form)
        spliced = []
        for item in form.items:
            if isinstance(item, Seq) and _head_is(item, UNQUOTE_SPLICING):
                self._one_arg(item)
                self.compile_expr(item.items[1])
                spliced.append(True)
            else:
                self._quasi(item, gensyms)
                spliced.append(False)
        fb.emit(Op.BUILD_QQ, fb.const((form.kind, tuple(spliced))))

    def _one_arg(self, form: Seq) -> None:
        if len(form.items) != 2:
            raise self.error(f"{head_name(form)} takes exactly one form", form)


def _head_is(form: Seq, symbol: Symbol) -> bool:
    return (form.kind == "list" and bool(form.items) and isinstance(form.items[0], Atom)
            and form.items[0].value is symbol)


def value_to_form(value: Any, at: Form, error: Callable[[str, Form], RtfsSyntaxError],
                  depth: int = 0) -> Form:
    """Code a macro returned (data) as forms, placed at the macro call's position."""
    if depth > 128:
        raise error("a macro returned code nested too deeply", at)
    kind = type(value)
    if value is None or kind in (bool, int, float, str, Keyword, Symbol, TaggedLiteral):
        return Atom(at.line, at.col, value)
    if kind is RList:
        return Seq(at.line, at.col, "list", [value_to_form(v, at, error, depth + 1)
                                             for v in value])
    if kind is tuple:
        return Seq(at.line, at.col, "vector", [value_to_form(v, at, error, depth + 1)
                                               for v in value])
    if isinstance(value, Map):
        items = [value_to_form(x, at, error, depth + 1) for pair in value.items() for x in pair]
        return Seq(at.line, at.col, "map", items)
    if kind is frozenset:
        return Seq(at.line, at.col, "set", [value_to_form(v, at, error, depth + 1)
                                            for v in set_items(value)])
    raise error(f"a macro returned a {kind.__name__}, which is not code", at)
