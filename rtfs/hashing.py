"""The hashes that name compiled code (DESIGN.md, "Keys").

- `interface_hash`: xxh3_128 of [format, qualified name, params and their types, return type,
  delegation hint] -- what a caller knows.
- `source_hash`: xxh3_128 of [format, compiler version, position-free canonical form of the
  definition, source hashes of the user functions it calls] -- Merkle-style, so cached
  bytecode can never run against different callees. Functions that call each other in a cycle
  share a hash of their strongly connected component, each adding its own form.

Which definition a name means. A function's dependencies are the user definitions (`defn`,
and `def` of any value, at any depth of a top-level form) whose names its text writes.
`program_source_hashes` sees the whole program before hashing anything, so a name may be
defined earlier or later than the function that calls it (forward references), and a name
defined more than once means every definition of it that can be in effect while the caller
runs: the last one before the caller's own definition, and every later one, in program order.
With one definition of the name anywhere (the common case) that is exactly it; with several,
each of them is part of the caller's hash, so a cached caller never runs against a callee its
hash did not cover. Names the program does not define are looked up in the environment
(`resolve`, e.g. functions defined by earlier programs of the same VM).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import xxhash

from rtfs.bytecode import COMPILER_VERSION, FORMAT_VERSION, Code, hint_plain
from rtfs.canonical import packb, value_to_plain
from rtfs.reader import Atom, ConstSeq, Form, HintForm, Seq
from rtfs.values import Symbol


@dataclass
class Unit:
    """A compiled function with what its source hash needs (`defn_name`: the global it
    defines, for `defn` and for `def` of a function)."""

    code: Code
    form: Form
    refs: set[str]
    defn_name: str | None


def symbols_in(form: Form) -> set[str]:
    """Every symbol name written in `form`: the names a definition may call.

    Source hashes take their dependencies from this (intersected with the user functions
    known), not from the compiler's scope analysis, so that a node can compute the source
    hash of a definition from its text alone, without compiling it (the L4 compile cache).
    """
    names: set[str] = set()
    stack = [form]
    while stack:
        item = stack.pop()
        if isinstance(item, ConstSeq):
            continue  # literals only
        if isinstance(item, Seq):
            stack.extend(item.items)
        elif isinstance(item, Atom) and isinstance(item.value, Symbol):
            names.add(item.value.name)
    return names


def defn_source_hash(form: Form, name: str, resolve: Callable[[str], bytes | None]) -> bytes:
    """The source hash `compile_program([form])` gives the function a top-level `defn` form
    defines, computed without compiling (from `form` alone: see `program_source_hashes` for a
    whole program, forward references included)."""
    return program_source_hashes([form], resolve=resolve).defined_by(0, name) or _source_hash(
        canonical_form(form), [])


def xxh128(data: bytes) -> bytes:
    return xxhash.xxh3_128_digest(data)


def canonical_form(form: Form) -> Any:
    """A form as plain data without positions."""
    if isinstance(form, Atom):
        return [0, value_to_plain(form.value), form.annotation]
    if isinstance(form, HintForm):
        return [2, hint_plain(form.hint)]
    assert isinstance(form, Seq)
    meta = value_to_plain(form.meta) if form.meta else None
    if isinstance(form, ConstSeq):  # literals read as one value
        return [3, form.kind, value_to_plain(form.value), meta]
    return [1, form.kind, [canonical_form(item) for item in form.items], meta]


def _source_hash(form_plain: Any, deps: list[list[Any]]) -> bytes:
    return xxh128(packb([FORMAT_VERSION, COMPILER_VERSION, form_plain, deps]))


# -- definitions and the graph of who names whom ------------------------------------------------
Deps = tuple[tuple[str, str | None], ...]
Position = tuple[int, int, int]  # top-level form, line, column: program order
Resolver = Callable[[str], "bytes | None"]


@dataclass
class Definition:
    """A definition of a global: `name`, where it is (`index` of its top-level form and the
    line and column of its `defn`/`def` form) and, once hashed, its source hash and deps."""

    name: str
    index: int
    form: Seq
    refs: set[str]
    source_hash: bytes = b""
    deps: Deps = ()

    @property
    def position(self) -> Position:
        return (self.index, self.form.line, self.form.col)


def definitions_in(form: Form, index: int) -> list[Definition]:
    """The `defn` and `def` forms inside `form` (itself included), in source order; quoted
    data is not searched."""
    found: list[Definition] = []
    stack = [form]
    while stack:
        item = stack.pop()
        if not isinstance(item, Seq) or isinstance(item, ConstSeq):
            continue
        head = item.items[0] if item.kind == "list" and item.items else None
        head_name = head.value.name if isinstance(head, Atom) and isinstance(
            head.value, Symbol) else None
        if head_name == "quote":
            continue
        if head_name in _DEFINING:
            name = _defined_name(item)
            if name is not None:
                found.append(Definition(name, index, item, symbols_in(item)))
        stack.extend(reversed(item.items))
    found.sort(key=lambda d: d.position)
    return found


_DEFINING = frozenset({"defn", "def", "defmacro", "deftype", "defstruct"})


def _defined_name(form: Seq) -> str | None:
    for item in form.items[1:3]:  # (defn ^:hint name ...) puts a hint before the name
        if isinstance(item, Atom) and isinstance(item.value, Symbol):
            return item.value.name
        if not isinstance(item, HintForm):
            return None
    return None


def _visible(defs_of_name: list[Definition], at: Definition) -> list[Definition]:
    """The definitions of one name that can be in effect while `at` runs: the last one before
    `at`, and every later one (for its own name: itself and every later one)."""
    before = [d for d in defs_of_name if d.position < at.position]
    after = [d for d in defs_of_name if d.position > at.position]
    if defs_of_name and defs_of_name[0].name == at.name:
        return [at, *after]
    return before[-1:] + after


def _hash_definitions(defs: list[Definition], resolve: Resolver) -> None:
    """Fix `source_hash` and `deps` of every definition (see the module docstring)."""
    by_name: dict[str, list[Definition]] = {}
    for d in sorted(defs, key=lambda d: d.position):
        by_name.setdefault(d.name, []).append(d)
    # Membership tests, not `refs & by_name.keys()` / `refs - by_name.keys()`: set arithmetic
    # with a dict view walks the whole view, which made hashing quadratic in the program.
    edges = {id(d): [v for name in sorted(n for n in d.refs if n in by_name)
                     for v in _visible(by_name[name], d)] for d in defs}
    labels = {id(d): d.name if len(by_name[d.name]) == 1 else
              f"{d.name}@{by_name[d.name].index(d)}" for d in defs}
    for component in _components(defs, edges):
        members = sorted(component, key=lambda d: d.position)
        inside = {id(m) for m in members}
        external: list[list[Any]] = []
        for member in members:
            for callee in edges[id(member)]:
                if id(callee) not in inside:
                    entry = [labels[id(callee)], callee.source_hash.hex()]
                    if entry not in external:
                        external.append(entry)
            for name in sorted(n for n in member.refs if n not in by_name):
                found = resolve(name)
                if found is not None and [name, found.hex()] not in external:
                    external.append([name, found.hex()])
        external.sort()
        extra: list[list[Any]] = []
        if len(members) > 1:  # mutual recursion: hash the cycle as a whole
            forms = [[labels[id(m)], canonical_form(m.form)] for m in members]
            group = xxh128(packb([FORMAT_VERSION, COMPILER_VERSION, "scc", forms, external]))
            extra = [["<cycle>", group.hex()]]
        for member in members:
            member.deps = tuple((n, h) for n, h in external + extra)
            member.source_hash = _source_hash(canonical_form(member.form), external + extra)


def _components(nodes: list[Definition], edges: dict[int, list[Definition]]
                ) -> list[list[Definition]]:
    """Strongly connected components, callees before callers (Tarjan, iterative)."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[Definition] = []
    on_stack: set[int] = set()
    result: list[list[Definition]] = []

    def push(node: Definition) -> None:
        index[id(node)] = low[id(node)] = len(index)
        stack.append(node)
        on_stack.add(id(node))

    for root in sorted(nodes, key=lambda d: d.position):
        if id(root) in index:
            continue
        push(root)
        work = [(root, iter(edges[id(root)]))]
        while work:
            node, targets = work[-1]
            for nxt in targets:
                if id(nxt) not in index:
                    push(nxt)
                    work.append((nxt, iter(edges[id(nxt)])))
                    break
                if id(nxt) in on_stack:
                    low[id(node)] = min(low[id(node)], index[id(nxt)])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[id(parent)] = min(low[id(parent)], low[id(node)])
                if low[id(node)] == index[id(node)]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(id(member))
                        component.append(member)
                        if member is node:
                            break
                    result.append(component)
    return result


# -- programs ------------------------------------------------------------------------------------
@dataclass
class ProgramHashes:
    """The source hashes of every definition of a program, computed before anything runs.

    Attributes:
        forms: the program's top-level forms.
        definitions: every definition, in program order, hashed.
        resolve: what names the program does not define mean (the environment).
    """

    forms: list[Form]
    definitions: list[Definition]
    resolve: Resolver

    def defined_by(self, index: int, name: str | None = None) -> bytes | None:
        """The source hash of the definition top-level form `index` is (its outermost
        `defn`/`def`, or the one of `name` inside it); None when there is none."""
        for d in self.definitions:
            if d.index == index and (name is None or d.name == name):
                return d.source_hash
        return None

    def in_form(self, index: int) -> list[Definition]:
        """The definitions inside top-level form `index`, in source order."""
        return [d for d in self.definitions if d.index == index]

    def resolver(self, index: int) -> Resolver:
        """What a name means to code of top-level form `index` that is not itself a
        definition (a top-level expression runs right after the definitions before it):
        the last definition of the name up to that form, or the environment's."""
        latest: dict[str, Definition] = {}
        for d in self.definitions:
            if d.index <= index:
                latest[d.name] = d
        defined = {d.name for d in self.definitions}

        def resolve(name: str) -> bytes | None:
            if name in latest:
                return latest[name].source_hash
            return None if name in defined else self.resolve(name)

        return resolve

    def overrides(self, index: int) -> dict[tuple[str, int, int], tuple[bytes, Deps]]:
        """(name, line, column) of each definition in form `index` -> (source hash, deps),
        for `assign_source_hashes` to give the compiled functions their program-level
        hashes."""
        return {(d.name, d.form.line, d.form.col): (d.source_hash, d.deps)
                for d in self.in_form(index)}


def program_source_hashes(forms: list[Form], *, resolve: Resolver | None = None
                          ) -> ProgramHashes:
    """Hash every definition of a program, seeing all of its top-level forms first.

    `resolve(name)` gives the source hash of a function the program does not define (from
    the environment it will run in); None for builtins and unknown names. Compile top-level
    form i with `rtfs.compiler.compile_top_level_form(hashes, i)` so that the functions it
    defines carry these hashes in `code.source_hash` and `code.deps`.
    """
    resolver = resolve or (lambda name: None)
    definitions = [d for i, form in enumerate(forms) for d in definitions_in(form, i)]
    _hash_definitions(definitions, resolver)
    return ProgramHashes(list(forms), definitions, resolver)


def assign_source_hashes(units: list[Unit], resolve: Resolver, *,
                         forms: list[Form] | None = None,
                         overrides: dict[tuple[str, int, int], tuple[bytes, Deps]] | None = None
                         ) -> None:
    """Fix `source_hash` and `deps` of every unit's code (units compiled together).

    The definitions inside `forms` (the top-level forms compiled; by default the units'
    own forms) follow the rules of `program_source_hashes`, with `forms` as the whole
    program; `resolve(name)` gives the source hash of a user function compiled earlier (None
    for builtins and unknown names). `overrides` gives the hash of a definition known from a
    whole-program pass, keyed by (name, line, column) of its form.
    """
    overrides = overrides or {}
    if forms is None:
        forms = [u.form for u in units if u.defn_name is not None]
    defs = [d for i, form in enumerate(forms) for d in definitions_in(form, i)]
    _hash_definitions(defs, resolve)
    for d in defs:
        found = overrides.get((d.name, d.form.line, d.form.col))
        if found is not None:
            d.source_hash, d.deps = found
    by_form = {id(d.form): d for d in defs}
    known = {d.name: d.source_hash for d in sorted(defs, key=lambda d: d.position)}
    for unit in units:
        definition = by_form.get(id(unit.form)) if unit.defn_name is not None else None
        if definition is not None:
            unit.code.source_hash, unit.code.deps = definition.source_hash, definition.deps
            continue
        deps = _external_deps(unit.refs, known, resolve)
        unit.code.deps = tuple((n, h) for n, h in deps)
        unit.code.source_hash = _source_hash(canonical_form(unit.form), deps)


def _external_deps(names: Iterable[str], known: dict[str, bytes], resolve: Resolver
                   ) -> list[list[Any]]:
    out = []
    for name in sorted(names):
        found = known[name] if name in known else resolve(name)
        if found is not None:
            out.append([name, found.hex()])
    return out
