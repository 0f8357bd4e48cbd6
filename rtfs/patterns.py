"""Destructuring (`let`, parameters, `catch`, `loop`, `for`) and `match` patterns.

Both work on a subject on top of the stack. A binding pattern always succeeds and consumes
the subject. A match pattern consumes the subject when it matches, and otherwise jumps to its
`fail` label with the subject still on the stack, so every clause cleans up the same way.

Binding patterns (chapter 05): a name or `_`; a vector `[p ... & rest :as name]`; a map with
`:keys [names]`, `:strs [names]`, `:or {name default}`, `:as name`, `& rest` (the entries not
named), and key/pattern entries in either order: `{:key p}` as the specification writes them,
`{p :key}` as Clojure does (the literal side is the key).

Match patterns: literals, names, `_`, vectors with `& rest` and `:as`, maps `{key pattern}`
(the key must be present) with `:keys`, `:as` and `& rest`, type patterns `(:int n)` /
`(:string)` / `([:vector :int] v)` (any type expression), and `(:as name pattern)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeGuard

from rtfs.assembler import P_DECLARE, P_STORE, Label
from rtfs.bytecode import Op
from rtfs.reader import Atom, ConstSeq, Form, Seq, form_to_value
from rtfs.values import Keyword, Symbol

if TYPE_CHECKING:
    from rtfs.assembler import FunctionBuilder
    from rtfs.errors import RtfsSyntaxError

_KEYS, _STRS, _OR, _AS = Keyword("keys"), Keyword("strs"), Keyword("or"), Keyword("as")
_WHEN, _AMP = Symbol("when"), Symbol("&")


class PatternCompiler:
    fb: FunctionBuilder

    def error(self, message: str, form: Form) -> RtfsSyntaxError:  # pragma: no cover
        raise NotImplementedError

    def compile_expr(self, form: Form) -> None:  # pragma: no cover
        raise NotImplementedError

    def compile_body(self, forms: Sequence[Form]) -> None:  # pragma: no cover
        raise NotImplementedError

    emit_type_test: Callable[[Form], None]  # push whether the top has a type (DerivedForms)

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
        fb = self.fb
        saved = fb.line, fb.col
        fb.line, fb.col = pattern.line, pattern.col  # a pattern that does not fit fails here
        try:
            self._bind_pattern(pattern)
        finally:
            fb.line, fb.col = saved

    def _bind_pattern(self, pattern: Form) -> None:
        if _is_symbol(pattern):
            if pattern.value.name == "&":
                raise self.error("& belongs inside a vector pattern", pattern)
            self.bind_name(pattern.value.name)
        elif isinstance(pattern, Seq) and pattern.kind == "vector":
            self._bind_vector(pattern)
        elif isinstance(pattern, Seq) and pattern.kind == "map":
            self._bind_map(pattern)
        else:
            raise self.error("invalid destructuring pattern: a binding is a name, a vector "
                             "pattern or a map pattern", pattern)

    def _bind_vector(self, pattern: Seq) -> None:
        fb, items = self.fb, list(pattern.items)
        if len(items) >= 2 and _is_kw(items[-2], _AS):
            fb.emit(Op.DUP)
            self.bind_pattern(items[-1])
            items = items[:-2]
        for index, item in enumerate(items):
            if _is_sym(item, _AMP):
                if index != len(items) - 2:
                    raise self.error("& is followed by exactly one pattern", pattern)
                fb.emit(Op.REST_FROM, index)
                self.bind_pattern(items[index + 1])
                break
            fb.emit(Op.NTH_OR_NIL, index)
            self.bind_pattern(item)
        fb.emit(Op.POP)

    def _bind_map(self, pattern: Seq) -> None:
        entries, rest, name_keys = self._map_entries(pattern)
        defaults = self._defaults(entries)
        fb = self.fb
        for key, value in entries:
            if _is_kw(key, _KEYS) or _is_kw(key, _STRS):
                for name_form in self._names(value):
                    name = name_form.value.name
                    wanted = Keyword(name) if _is_kw(key, _KEYS) else name
                    self._get_key(wanted, defaults.get(name))
                    self.bind_name(name)
            elif _is_kw(key, _AS):
                fb.emit(Op.DUP)
                self.bind_pattern(value)
            elif not _is_kw(key, _OR):
                target, literal = self._entry(key, value)
                name = target.value.name if _is_symbol(target) else ""
                self._get_key(form_to_value(literal), defaults.get(name))
                self.bind_pattern(target)
        if rest is not None:
            fb.emit(Op.MAP_REST, fb.const(tuple(name_keys)))
            self.bind_pattern(rest)
        fb.emit(Op.POP)

    def _map_entries(self, pattern: Seq, *, match: bool = False
                     ) -> tuple[list[tuple[Form, Form]], Form | None, list[object]]:
        """The key/value entries of a map pattern, its `& rest` pattern, and the keys the
        entries name (what the rest leaves out). In a match pattern the key always comes
        first (its pattern may be a literal too)."""
        items = list(pattern.items)
        rest = None
        for index, item in enumerate(items):
            if _is_sym(item, _AMP):
                if index != len(items) - 2 or index % 2:
                    raise self.error("& in a map pattern is followed by one name, at the end",
                                     pattern)
                rest, items = items[index + 1], items[:index]
                break
        entries = list(zip(items[0::2], items[1::2]))
        named: list[object] = []
        for key, value in entries:
            if _is_kw(key, _KEYS) or _is_kw(key, _STRS):
                named += [Keyword(n.value.name) if _is_kw(key, _KEYS) else n.value.name
                          for n in self._names(value)]
            elif not (_is_kw(key, _AS) or _is_kw(key, _OR)):
                named.append(form_to_value(key if match else self._entry(key, value)[1]))
        return entries, rest, named

    def _names(self, value: Form) -> list[Atom]:
        if not (isinstance(value, Seq) and value.kind == "vector"
                and all(_is_symbol(v) for v in value.items)):
            raise self.error(":keys and :strs take a vector of names", value)
        return list(value.items)  # type: ignore[arg-type]

    def _defaults(self, entries: list[tuple[Form, Form]]) -> dict[str, Form]:
        for key, value in entries:
            if _is_kw(key, _OR):
                if not (isinstance(value, Seq) and value.kind == "map"):
                    raise self.error(":or takes a map of defaults", value)
                return {k.value.name: v for k, v in zip(value.items[0::2], value.items[1::2])
                        if _is_symbol(k)}
        return {}

    def _entry(self, key: Form, value: Form) -> tuple[Form, Form]:
        """(binding pattern, literal key) of one map-pattern entry, in either order."""
        if _is_literal(key) and not _is_literal(value):
            return value, key  # {:name n}: the specification's order
        if _is_literal(value) and not _is_literal(key):
            return key, value  # {n :name}: Clojure's order
        raise self.error("a map pattern entry is a key and a pattern: {:key name}", key)

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
        items, i = form.items[2:], 0
        clauses: list[tuple[Form, Form | None, Form]] = []
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
        if _is_symbol(pattern):
            self.bind_name(pattern.value.name)
        elif _is_literal(pattern) or isinstance(pattern, ConstSeq) and pattern.kind != "map":
            fb.emit(Op.DUP)
            fb.emit(Op.LOAD_CONST, fb.const(form_to_value(pattern)))
            fb.emit(Op.EQUAL)
            fb.emit(Op.JUMP_IF_FALSE, fail)
            fb.emit(Op.POP)
        elif isinstance(pattern, Seq) and pattern.kind == "vector":
            self._match_vector(pattern, fail)
        elif isinstance(pattern, Seq) and pattern.kind == "map":
            self._match_map(pattern, fail)
        elif isinstance(pattern, Seq) and pattern.kind == "list" and pattern.items:
            self._match_list(pattern, fail)
        else:
            raise self.error("a match pattern is a literal, a name, _, a vector, a map, a type "
                             "pattern (:int n) or (:as name pattern)", pattern)

    def _match_list(self, pattern: Seq, fail: Label) -> None:
        """`(:as name pattern)` and type patterns `(T)` / `(T pattern)`."""
        fb, head, args = self.fb, pattern.items[0], list(pattern.items[1:])
        if _is_kw(head, _AS):
            if len(args) != 2 or not _is_symbol(args[0]):
                raise self.error("(:as name pattern) binds the value and matches it", pattern)
            fb.emit(Op.DUP)
            self.bind_name(args[0].value.name)
            self.match_pattern(args[1], fail)
            return
        if len(args) > 1:
            raise self.error("a type pattern is (T) or (T pattern)", pattern)
        self.emit_type_test(head)
        fb.emit(Op.JUMP_IF_FALSE, fail)
        if args:
            self.match_pattern(args[0], fail)
        else:
            fb.emit(Op.POP)

    def _match_vector(self, pattern: Seq, fail: Label) -> None:
        fb, items = self.fb, list(pattern.items)
        alias = None
        if len(items) >= 2 and _is_kw(items[-2], _AS):
            alias, items = items[-1], items[:-2]
            if not _is_symbol(alias):
                raise self.error(":as in a vector pattern is followed by a name", pattern)
        rest_at = next((i for i, item in enumerate(items) if _is_sym(item, _AMP)), None)
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
        if alias is not None and _is_symbol(alias):
            fb.emit(Op.DUP)
            self.bind_name(alias.value.name)
        self._finish_compound(cleanups, fail)

    def _match_map(self, pattern: Seq, fail: Label) -> None:
        fb = self.fb
        entries, rest, named = self._map_entries(pattern, match=True)
        fb.emit(Op.TEST_MAP)
        fb.emit(Op.JUMP_IF_FALSE, fail)
        cleanups = []
        for key, sub in entries:
            if _is_kw(key, _KEYS) or _is_kw(key, _STRS):
                for name_form in self._names(sub):
                    name = name_form.value.name
                    fb.emit(Op.GET_KEY, fb.const(Keyword(name) if _is_kw(key, _KEYS) else name))
                    self.bind_name(name)
                continue
            if _is_kw(key, _AS):
                fb.emit(Op.DUP)
                self.bind_pattern(sub)
                continue
            if not _is_literal(key):
                raise self.error("match map pattern keys are literals: {:key pattern}", key)
            key_index = fb.const(form_to_value(key))
            fb.emit(Op.HAS_KEY, key_index)
            fb.emit(Op.JUMP_IF_FALSE, fail)
            cleanups.append(Label())
            fb.emit(Op.GET_KEY, key_index)
            self.match_pattern(sub, cleanups[-1])
        if rest is not None:
            fb.emit(Op.MAP_REST, fb.const(tuple(named)))
            self.bind_pattern(rest)
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


def _is_kw(form: Form, keyword: Keyword) -> TypeGuard[Atom]:
    return isinstance(form, Atom) and form.value is keyword


def _is_sym(form: Form, symbol: Symbol) -> TypeGuard[Atom]:
    return isinstance(form, Atom) and form.value is symbol


def _is_symbol(form: Form) -> TypeGuard[Atom]:
    return isinstance(form, Atom) and isinstance(form.value, Symbol)


def _is_literal(form: Form) -> TypeGuard[Atom]:
    return isinstance(form, Atom) and not isinstance(form.value, Symbol)
