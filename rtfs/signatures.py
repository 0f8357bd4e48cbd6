"""The shapes of function and binding forms, read into plain records before compiling.

Functions (`fn`, `defn`, `lambda`, `λ`):

    (defn name "doc"? {:attr ...}? [params] :Ret? body...)
    (defn name [params] : Ret body...)          (fn name? [params] ...)
    (defn name {:keys [a b]} body...)           one map-destructured parameter
    (defn name {:type {:args [T ...] :return R}} [params] body...)
    (defn name [params] {:type {...}} body...)  the same metadata after the parameters

Parameters and bindings take a type in any of the notations of the specification:
`x:int`, `x :int` (parameters only: a keyword cannot be a parameter), `x : int`, `x: int`,
`x : [:vector :int]`; `& rest` takes one the same way and then types each rest argument.
In a `let`, `x : T value` and `x:T value` (not `x :T value`, where :T is the value).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeGuard

from rtfs.errors import RtfsSyntaxError
from rtfs.reader import COLON, TYPE_FOLLOWS, Atom, Form, HintForm, Seq, form_to_value
from rtfs.values import DelegationHint, Keyword, Map, Symbol

ErrorFactory = Callable[[str, Form], RtfsSyntaxError]


@dataclass
class Binding:
    """A pattern and the type form it was annotated with (None when untyped)."""

    pattern: Form
    type_form: Form | None = None


@dataclass
class FnSpec:
    hint: DelegationHint | None
    params: list[Binding]
    rest: Binding | None
    return_type: Form | None
    body: list[Form]
    params_form: Form
    attributes: Map | None = None
    doc: str | None = None
    arg_types: list[Form] = field(default_factory=list)


def is_symbol(form: Form, name: str | None = None) -> TypeGuard[Atom]:
    return isinstance(form, Atom) and isinstance(form.value, Symbol) and (
        name is None or form.value.name == name)


def head_name(form: Seq) -> str:
    """The name of the symbol a special form starts with (what dispatched it)."""
    head = form.items[0]
    return head.value.name if isinstance(head, Atom) and isinstance(head.value, Symbol) else ""


def is_keyword(form: Form) -> TypeGuard[Atom]:
    return isinstance(form, Atom) and isinstance(form.value, Keyword)


def is_vector(form: Form) -> TypeGuard[Seq]:
    return isinstance(form, Seq) and form.kind == "vector"


def is_map(form: Form) -> TypeGuard[Seq]:
    return isinstance(form, Seq) and form.kind == "map"


def _type_of_annotation(atom: Atom) -> Form | None:
    """`x:int` carries its type as text on the symbol's atom."""
    if atom.annotation is None or atom.annotation == TYPE_FOLLOWS:
        return None
    return Atom(atom.line, atom.col, Symbol(atom.annotation))


def take_binding(items: Sequence[Form], at: int, *, keyword_types: bool, error: ErrorFactory
                 ) -> tuple[Binding, int]:
    """The binding starting at `items[at]` (a pattern and maybe its type); the index after."""
    pattern = items[at]
    at += 1
    type_form = _type_of_annotation(pattern) if isinstance(pattern, Atom) else None
    follows = isinstance(pattern, Atom) and pattern.annotation == TYPE_FOLLOWS
    if type_form is None and at < len(items):
        if follows or is_symbol(items[at], COLON.name):
            at += 0 if follows else 1
            if at >= len(items):
                raise error("':' must be followed by a type", items[at - 1])
            type_form, at = items[at], at + 1
        elif keyword_types and is_keyword(items[at]):
            type_form, at = items[at], at + 1
    elif follows:
        raise error("':' must be followed by a type", pattern)
    return Binding(pattern, type_form), at


def parameter_bindings(params_form: Seq, error: ErrorFactory) -> tuple[list[Binding],
                                                                        Binding | None]:
    """The positional parameters and the `& rest` parameter of a parameter vector."""
    items, at = params_form.items, 0
    positional: list[Binding] = []
    rest: Binding | None = None
    while at < len(items):
        if is_symbol(items[at], "&"):
            if at + 1 >= len(items):
                raise error("& is followed by the rest parameter", params_form)
            rest, at = take_binding(items, at + 1, keyword_types=True, error=error)
            if not is_symbol(rest.pattern):
                raise error("the rest parameter of a function is a name, not a pattern "
                            "(destructure it in the body)", rest.pattern)
            if at != len(items):
                raise error("& is followed by exactly one rest parameter", params_form)
            break
        binding, at = take_binding(items, at, keyword_types=True, error=error)
        positional.append(binding)
    return positional, rest


def let_bindings(vector: Seq, error: ErrorFactory) -> list[tuple[Binding, Form]]:
    """The (binding, value) pairs of a `let` (or `loop`) binding vector."""
    items, at = vector.items, 0
    pairs = []
    while at < len(items):
        binding, at = take_binding(items, at, keyword_types=False, error=error)
        if at >= len(items):
            raise error("let bindings come in pattern/value pairs", vector)
        pairs.append((binding, items[at]))
        at += 1
    return pairs


def fn_spec(form: Seq, spec: Sequence[Form], error: ErrorFactory) -> FnSpec:
    """Read `[hint] [docstring] [attributes] [params] [return type] body...`."""
    hint, rest = _take_hint(list(spec))
    doc = None
    if len(rest) > 1 and isinstance(rest[0], Atom) and isinstance(rest[0].value, str):
        doc, rest = rest[0].value, rest[1:]
    attributes = None
    if len(rest) > 1 and is_map(rest[0]) and is_vector(rest[1]):
        attributes, rest = form_to_value(rest[0]), rest[1:]
    first = rest[0] if rest else None
    if isinstance(first, Seq) and first.kind == "map":
        params_form = Seq(first.line, first.col, "vector", [first])  # {:keys [...]}
    elif isinstance(first, Seq) and first.kind == "vector":
        params_form = first
    else:
        raise error("a function needs a parameter vector", form)
    positional, rest_binding = parameter_bindings(params_form, error)
    body = list(rest[1:])
    return_type: Form | None = None
    if len(body) > 1 and is_keyword(body[0]):
        return_type, body = body[0], body[1:]
    elif body and is_symbol(body[0], COLON.name):
        if len(body) < 2:
            raise error("':' after the parameters must be followed by a return type", body[0])
        return_type, body = body[1], body[2:]
    if len(body) > 1 and is_map(body[0]) and _type_attributes(form_to_value(body[0])):
        attributes, body = form_to_value(body[0]), body[1:]
    result = FnSpec(hint, positional, rest_binding, return_type, body, params_form,
                    attributes, doc)
    _apply_type_attributes(result, form, error)
    return result


def _type_attributes(attributes: Map) -> bool:
    return isinstance(attributes.get(Keyword("type")), Map)


def _apply_type_attributes(spec: FnSpec, form: Seq, error: ErrorFactory) -> None:
    """`{:type {:args [T ...] :return R}}` types the parameters and the result."""
    if spec.attributes is None or not _type_attributes(spec.attributes):
        return
    types = spec.attributes[Keyword("type")]
    args = types.get(Keyword("args"))
    if args is not None:
        if type(args) is not tuple or len(args) != len(spec.params):
            raise error(f"{{:type {{:args ...}}}} gives {len(args) if type(args) is tuple else 0}"
                        f" type(s) for {len(spec.params)} parameter(s)", form)
        for binding, datum in zip(spec.params, args):
            if binding.type_form is None:
                binding.type_form = _datum_form(datum, binding.pattern)
    ret = types.get(Keyword("return"))
    if ret is not None and spec.return_type is None:
        spec.return_type = _datum_form(ret, form)


def _datum_form(datum: object, at: Form) -> Form:
    """A type written as data in an attribute map, as a form at `at`'s position."""
    return Atom(at.line, at.col, datum)


def _take_hint(spec: list[Form]) -> tuple[DelegationHint | None, list[Form]]:
    hints = [item for item in spec if isinstance(item, HintForm)]
    if len(hints) > 1:
        raise RtfsSyntaxError("a function takes at most one delegation hint",
                              hints[1].line, hints[1].col)
    if hints and spec.index(hints[0]) > 1:
        raise RtfsSyntaxError("a delegation hint goes before the parameter vector",
                              hints[0].line, hints[0].col)
    return (hints[0].hint if hints else None), [s for s in spec if not isinstance(s, HintForm)]
