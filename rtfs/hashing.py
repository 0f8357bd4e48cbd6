"""The hashes that name compiled code (DESIGN.md, "Keys").

- `interface_hash`: xxh3_128 of [format, qualified name, params and their types, return type,
  delegation hint] -- what a caller knows.
- `source_hash`: xxh3_128 of [format, compiler version, position-free canonical form of the
  definition, source hashes of the user functions it calls] -- Merkle-style, so cached
  bytecode can never run against different callees. Functions that call each other in a cycle
  share a hash of their strongly connected component, each adding its own form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import xxhash

from rtfs.bytecode import COMPILER_VERSION, FORMAT_VERSION, Code
from rtfs.canonical import packb, value_to_plain
from rtfs.reader import Atom, Form, HintForm, Seq
from rtfs.values import DelegationHint, Symbol


@dataclass
class Unit:
    """A compiled function with what its source hash needs."""

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
        if isinstance(item, Seq):
            stack.extend(item.items)
        elif isinstance(item, Atom) and isinstance(item.value, Symbol):
            names.add(item.value.name)
    return names


def defn_source_hash(form: Form, name: str, resolve: Callable[[str], bytes | None]) -> bytes:
    """The source hash `compile_program([form])` gives the function a top-level `defn` form
    defines, computed without compiling."""
    deps = _external_deps(symbols_in(form) - {name}, {}, resolve)
    return _source_hash(canonical_form(form), deps)


def _external_deps(names: Iterable[str], known: dict[str, bytes],
                   resolve: Callable[[str], bytes | None]) -> list[list[Any]]:
    out = []
    for name in sorted(names):
        found = known[name] if name in known else resolve(name)
        if found is not None:
            out.append([name, found.hex()])
    return out


def xxh128(data: bytes) -> bytes:
    return xxhash.xxh3_128_digest(data)


def canonical_form(form: Form) -> Any:
    """A form as plain data without positions."""
    if isinstance(form, Atom):
        return [0, value_to_plain(form.value), form.annotation]
    if isinstance(form, HintForm):
        return [2, hint_plain(form.hint)]
    meta = value_to_plain(form.meta) if form.meta else None
    return [1, form.kind, [canonical_form(item) for item in form.items], meta]


def hint_plain(hint: DelegationHint | None) -> Any:
    if hint is None:
        return None
    return [str(hint.kind), hint.target, [[k, value_to_plain(v)] for k, v in hint.extra]]


def interface_hash(code: Code) -> bytes:
    params = [[p.name, p.type] for p in code.params]
    rest = [code.rest.name, code.rest.type] if code.rest is not None else None
    return xxh128(packb([FORMAT_VERSION, "interface", code.qualname, params, rest,
                         code.return_type, hint_plain(code.hint)]))


def _source_hash(form_plain: Any, deps: list[list[Any]]) -> bytes:
    return xxh128(packb([FORMAT_VERSION, COMPILER_VERSION, form_plain, deps]))


def assign_source_hashes(units: list[Unit], resolve: Callable[[str], bytes | None]) -> None:
    """Fix `source_hash` and `deps` of every unit's code.

    `resolve(name)` gives the source hash of a user function compiled earlier (or None for
    builtins and unknown names, which do not take part).
    """
    defns = {u.defn_name: u for u in units if u.defn_name is not None}
    known: dict[str, bytes] = {}

    def resolve_outside(name: str) -> bytes | None:
        return None if name in defns else resolve(name)

    for component in _components(defns):
        members = sorted(component)
        outside = {r for m in members for r in defns[m].refs} - set(members)
        external = _external_deps(outside, known, resolve_outside)
        extra: list[list[Any]] = []
        if len(members) > 1:  # mutual recursion: hash the cycle as a whole
            forms = [[m, canonical_form(defns[m].form)] for m in members]
            group = xxh128(packb([FORMAT_VERSION, COMPILER_VERSION, "scc", forms, external]))
            extra = [["<cycle>", group.hex()]]
        for name in members:
            unit = defns[name]
            unit.code.deps = tuple((n, h) for n, h in external + extra)
            unit.code.source_hash = _source_hash(canonical_form(unit.form), external + extra)
            known[name] = unit.code.source_hash
    for unit in units:
        if unit.defn_name is None:
            deps = _external_deps(unit.refs, known, resolve_outside)
            unit.code.deps = tuple((n, h) for n, h in deps)
            unit.code.source_hash = _source_hash(canonical_form(unit.form), deps)


def _components(defns: dict[str, Unit]) -> Iterable[list[str]]:
    """Strongly connected components of the call graph, callees before callers (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []

    def visit(root: str) -> None:
        work = [(root, iter(sorted(defns[root].refs & defns.keys())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(defns[nxt].refs & defns.keys()))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    result.append(component)

    for name in sorted(defns):
        if name not in index:
            visit(name)
    return result
