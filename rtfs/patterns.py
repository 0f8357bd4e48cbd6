"""Destructuring (`let`, parameters, `catch`) and `match` patterns.

Both work on a subject on top of the stack. A binding pattern always succeeds and consumes
the subject. A match pattern consumes the subject when it matches, and otherwise jumps to its
`fail` label with the subject still on the stack, so every clause cleans up the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rtfs.assembler import P_DECLARE, P_STORE, Label
from rtfs.bytecode import Op
from rtfs.reader import Atom, Form, Seq, form_to_value
from rtfs.values import Keyword, Symbol

if TYPE_CHECKING:
    from rtfs.assembler import FunctionBuilder
    from rtfs.errors import RtfsSyntaxError

_KEYS, _OR, _AS, _WHEN = Keyword("keys"), Keyword("or"), Keyword("as"), Symbol("when")


class PatternCompiler:
    fb: FunctionBuilder

    def error(self, message: str, form: Form) -> RtfsSyntaxError:  # pragma: no cover
        raise NotImplementedError

    def compile_expr(self, form: Form) -> None:  # pragma: no cover
        raise NotImplementedError

    def compile_body(self, forms: list[Form]) -> None:  # pragma: no cover
        raise NotImplementedError

    # -- binding -----------------------------------------------------------------------------
    def bind_name(self, name: str) -> None:
        """Pop the top of the stack into a new local called `name` in the current scope."""
        fb = self.fb
        if name == "_":
            fb.emit(Op.POP)
            return
        var = fb.new_var(name)
        fb.emit(P_DECLARE, var)
        fb.emit(P_STORE, var)
        fb.scope.vars[name] = var

    def bind_pattern(self, pattern: Form) -> None:
        if isinstance(pattern, Atom) and isinstance(pattern.value, Symbol):
            self.bind_name(pattern.value.name)
        elif isinstance(pattern, Seq) and pattern.kind == "vector":
            self._bind_vector(pattern)
        elif isinstance(pattern, Seq) and pattern.kind == "map":
            self._bind_map(pattern)
        else:
            raise self.error("a binding is a name, a vector pattern or a map pattern", pattern)

    def _bind_vector(self, pattern: Seq) -> None:
        fb, items = self.fb, list(pattern.items)
        if len(items) >= 2 and _is_kw(items[-2], _AS):
            fb.emit(Op.DUP)
            self.bind_pattern(items[-1])
            items = items[:-2]
        for index, item in enumerate(items):
            if isinstance(item, Atom) and item.value is Symbol("&"):
                if index != len(items) - 2:
                    raise self.error("& is followed by exactly one pattern", pattern)
                fb.emit(Op.REST_FROM, index)
                self.bind_pattern(items[index + 1])
                break
            fb.emit(Op.NTH_OR_NIL, index)
            self.bind_pattern(item)
        fb.emit(Op.POP)

    def _bind_map(self, pattern: Seq) -> None:
        fb = self.fb
        pairs = list(zip(pattern.items[0::2], pattern.items[1::2]))
        defaults = {}
        for key, value in pairs:
            if _is_kw(key, _OR):
                if not (isinstance(value, Seq) and value.kind == "map"):
                    raise self.error(":or takes a map of defaults", value)
                defaults = {k.value.name: v for k, v in zip(value.items[0::2], value.items[1::2])
                            if isinstance(k, Atom) and isinstance(k.value, Symbol)}
        for key, value in pairs:
            if _is_kw(key, _KEYS):
                if not (isinstance(value, Seq) and value.kind == "vector"
                        and all(isinstance(v, Atom) and isinstance(v.value, Symbol)
                                for v in value.items)):
                    raise self.error(":keys takes a vector of names", value)
                for name_form in value.items:
                    name = name_form.value.name
                    self._get_key(Keyword(name), defaults.get(name))
                    self.bind_name(name)
            elif _is_kw(key, _AS):
                fb.emit(Op.DUP)
                self.bind_pattern(value)
            elif not _is_kw(key, _OR):
                if not _is_literal(value):
                    raise self.error("a map pattern binds {name :key}", key)
                name = key.value.name if _is_symbol(key) else None
                self._get_key(form_to_value(value), defaults.get(name))
                self.bind_pattern(key)
        fb.emit(Op.POP)

    def _get_key(self, key: object, default: Form | None) -> None:
        fb = self.fb
        if default is None:
            fb.emit(Op.GET_KEY, fb.const(key))
        else:
            self.compile_expr(default)
            fb.emit(Op.GET_KEY_OR, fb.const(key))

    # -- match -----------------------------------------------------------------------------
    def compile_match(self, form: Seq) -> None:
        fb = self.fb
        if len(form.items) < 3:
            raise self.error("match takes a value and at least one pattern/expression pair",
                             form)
        self.compile_expr(form.items[1])
        end = Label()
        for pattern, guard, body in self._clauses(form):
            mismatch, next_clause = Label(), Label()
            fb.push_scope()
            fb.emit(Op.DUP)
            self.match_pattern(pattern, mismatch)
            if guard is not None:
                self.compile_expr(guard)
                fb.emit(Op.JUMP_IF_FALSE, next_clause)
            fb.emit(Op.POP)
            self.compile_expr(body)
            fb.emit(Op.JUMP, end)
            fb.mark(mismatch)
            fb.emit(Op.POP)
            fb.mark(next_clause)
            fb.pop_scope()
        fb.emit(Op.MATCH_FAIL)
        fb.mark(end)

    def _clauses(self, form: Seq) -> list[tuple[Form, Form | None, Form]]:
        items, clauses, i = form.items[2:], [], 0
        while i < len(items):
            pattern = items[i]
            if i + 3 < len(items) and _is_sym(items[i + 1], _WHEN):
                clauses.append((pattern, items[i + 2], items[i + 3]))
                i += 4
            elif i + 1 < len(items) and not _is_sym(items[i + 1], _WHEN):
                clauses.append((pattern, None, items[i + 1]))
                i += 2
            else:
                raise self.error("match clause needs an expression after its pattern", pattern)
        return clauses

    def match_pattern(self, pattern: Form, fail: Label) -> None:
        fb = self.fb
        if isinstance(pattern, Atom) and isinstance(pattern.value, Symbol):
            self.bind_name(pattern.value.name)
        elif _is_literal(pattern):
            fb.emit(Op.DUP)
            fb.emit(Op.LOAD_CONST, fb.const(form_to_value(pattern)))
            fb.emit(Op.EQUAL)
            fb.emit(Op.JUMP_IF_FALSE, fail)
            fb.emit(Op.POP)
        elif isinstance(pattern, Seq) and pattern.kind == "vector":
            self._match_vector(pattern, fail)
        elif isinstance(pattern, Seq) and pattern.kind == "map":
            self._match_map(pattern, fail)
        else:
            raise self.error("a match pattern is a literal, a name, _, a vector or a map",
                             pattern)

    def _match_vector(self, pattern: Seq, fail: Label) -> None:
        fb, items = self.fb, pattern.items
        rest_at = next((i for i, item in enumerate(items)
                        if isinstance(item, Atom) and item.value is Symbol("&")), None)
        if rest_at is not None and rest_at != len(items) - 2:
            raise self.error("& is followed by exactly one pattern", pattern)
        fixed = items if rest_at is None else items[:rest_at]
        fb.emit(Op.TEST_SEQ if rest_at is None else Op.TEST_SEQ_MIN, len(fixed))
        fb.emit(Op.JUMP_IF_FALSE, fail)
        cleanups = []
        for index, item in enumerate(fixed):
            cleanups.append(Label())
            fb.emit(Op.NTH_OR_NIL, index)
            self.match_pattern(item, cleanups[-1])
        if rest_at is not None:
            cleanups.append(Label())
            fb.emit(Op.REST_FROM, rest_at)
            self.match_pattern(items[rest_at + 1], cleanups[-1])
        self._finish_compound(cleanups, fail)

    def _match_map(self, pattern: Seq, fail: Label) -> None:
        fb = self.fb
        fb.emit(Op.TEST_MAP)
        fb.emit(Op.JUMP_IF_FALSE, fail)
        cleanups = []
        for key, sub in zip(pattern.items[0::2], pattern.items[1::2]):
            if not _is_literal(key):
                raise self.error("match map pattern keys are literals: {:key pattern}", key)
            key_index = fb.const(form_to_value(key))
            fb.emit(Op.HAS_KEY, key_index)
            fb.emit(Op.JUMP_IF_FALSE, fail)
            cleanups.append(Label())
            fb.emit(Op.GET_KEY, key_index)
            self.match_pattern(sub, cleanups[-1])
        self._finish_compound(cleanups, fail)

    def _finish_compound(self, cleanups: list[Label], fail: Label) -> None:
        """Success pops the subject; each element's failure pops that element first."""
        fb, done = self.fb, Label()
        fb.emit(Op.POP)
        fb.emit(Op.JUMP, done)
        for label in cleanups:
            fb.mark(label)
            fb.emit(Op.POP)
            fb.emit(Op.JUMP, fail)
        fb.mark(done)


def _is_kw(form: Form, keyword: Keyword) -> bool:
    return isinstance(form, Atom) and form.value is keyword


def _is_sym(form: Form, symbol: Symbol) -> bool:
    return isinstance(form, Atom) and form.value is symbol


def _is_symbol(form: Form) -> bool:
    return isinstance(form, Atom) and isinstance(form.value, Symbol)


def _is_literal(form: Form) -> bool:
    return isinstance(form, Atom) and not isinstance(form.value, Symbol)
