"""Static routes: exact names in a dict, globs compiled once into one ordered regex.

A pattern with none of `*`, `?`, `[` is an exact name and is found with one dict lookup.
Other patterns are globs: `*` matches any run of characters (also none), `?` one character,
`[abc]` / `[a-z]` one of a set and `[!abc]` one outside it; a `]` right after `[` or `[!`
belongs to the set. To route a name that contains `?` exactly (`valid?`), write `valid[?]`.

When several globs match a name, the most specific wins. Specificity, in order:
1. more literal characters (`ai-gen-*` beats `ai-*`);
2. fewer `*` wildcards (`a?c` beats `a*c`);
3. fewer `?` wildcards, then fewer `[...]` sets;
4. a longer literal prefix before the first wildcard (`gen*x` beats `*genx`);
5. the pattern text itself, so the order is total and never depends on file order.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Generic, TypeVar

from delegation.targets import ExecTarget

V = TypeVar("V")

GLOB_CHARS = frozenset("*?[")
_MEMO_MAX = 4096
_MISS = object()


def is_glob(pattern: str) -> bool:
    """True if `pattern` has a wildcard and so is matched as a glob."""
    return any(ch in GLOB_CHARS for ch in pattern)


@dataclass(frozen=True, slots=True)
class GlobSpec:
    """A parsed glob: its regex and the counts that order it by specificity."""

    pattern: str
    regex: str
    literals: int
    stars: int
    singles: int
    sets: int
    prefix: int

    def sort_key(self) -> tuple[int, int, int, int, int, str]:
        """Most specific first when sorted ascending."""
        return (-self.literals, self.stars, self.singles, self.sets, -self.prefix, self.pattern)


def compile_glob(pattern: str) -> GlobSpec:
    """Parse a glob; raise `ValueError` for an empty pattern or an unclosed `[`."""
    if not pattern:
        raise ValueError("a pattern must not be empty")
    parts: list[str] = []
    counts = {"literals": 0, "stars": 0, "singles": 0, "sets": 0}
    prefix: int | None = None
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch in GLOB_CHARS and prefix is None:
            prefix = i
        if ch == "*":
            counts["stars"] += 1
            if not parts or parts[-1] != ".*":  # "**" is the same as "*"
                parts.append(".*")
        elif ch == "?":
            counts["singles"] += 1
            parts.append(".")
        elif ch == "[":
            regex, i = _char_set(pattern, i)
            counts["sets"] += 1
            parts.append(regex)
            continue
        else:
            counts["literals"] += 1
            parts.append(re.escape(ch))
        i += 1
    regex = "".join(parts)
    try:
        re.compile(regex)
    except re.error as e:  # e.g. a reversed range such as [z-a]
        raise ValueError(f"bad pattern {pattern!r}: {e.msg}") from None
    return GlobSpec(pattern, regex, prefix=len(pattern) if prefix is None else prefix, **counts)


def _char_set(pattern: str, start: int) -> tuple[str, int]:
    """Translate the set starting at `pattern[start] == "["`; return (regex, index after)."""
    i = start + 1
    negate = i < len(pattern) and pattern[i] == "!"
    if negate:
        i += 1
    body_start = i
    if i < len(pattern) and pattern[i] == "]":
        i += 1
    while i < len(pattern) and pattern[i] != "]":
        i += 1
    if i >= len(pattern):
        raise ValueError(f"unclosed '[' at position {start} in pattern {pattern!r}")
    body = "".join(ch if ch == "-" else re.escape(ch) for ch in pattern[body_start:i])
    return f"[{'^' if negate else ''}{body}]", i + 1


class PatternTable(Generic[V]):
    """Maps names to values through exact keys and specificity-ordered globs.

    `match` is one dict lookup for an exact name; a glob lookup runs one precompiled regex
    once per distinct name and is then memoized (bounded, safe to share between threads).
    """

    def __init__(self, items: Iterable[tuple[str, V]]) -> None:
        exact: dict[str, V] = {}
        globs: list[tuple[GlobSpec, V]] = []
        for pattern, value in items:
            if is_glob(pattern):
                globs.append((compile_glob(pattern), value))
            elif not pattern:
                raise ValueError("a pattern must not be empty")
            else:
                exact[pattern] = value
        globs.sort(key=lambda item: item[0].sort_key())
        self._exact = exact
        self._globs = tuple(globs)
        self._values = tuple(value for _, value in globs)
        self._regex = _combined(spec for spec, _ in globs)
        # glob matches memoized per name: bounded, least recently used first out
        self._memo = functools.lru_cache(maxsize=_MEMO_MAX)(self._match_glob)

    @property
    def exact(self) -> Mapping[str, V]:
        """The exact-name entries."""
        return MappingProxyType(self._exact)

    @property
    def globs(self) -> tuple[tuple[GlobSpec, V], ...]:
        """The glob entries, most specific first."""
        return self._globs

    def match(self, name: str) -> V | None:
        """Return the value for `name`: exact entry first, else the most specific glob."""
        value = self._exact.get(name)
        if value is not None or self._regex is None:
            return value
        return self._memo(name)  # type: ignore[no-any-return]

    def _match_glob(self, name: str) -> V | None:
        assert self._regex is not None
        m = self._regex.fullmatch(name)
        if m is None:
            return None
        return self._values[int(m.lastgroup[1:])]  # type: ignore[index]

    def __len__(self) -> int:
        return len(self._exact) + len(self._globs)


def _combined(specs: Iterable[GlobSpec]) -> re.Pattern[str] | None:
    # Alternatives are tried in order, so the first that matches the whole name is the most
    # specific one.
    alternatives = [f"(?P<g{i}>{spec.regex})" for i, spec in enumerate(specs)]
    return re.compile("|".join(alternatives), re.DOTALL) if alternatives else None


@dataclass(frozen=True, slots=True)
class Route:
    """A static route: calls whose name matches `pattern` run on `target`.

    `fallback` is where the call goes when the target is unavailable or not allowed;
    `line` is where the route is defined in its config file (for explanations).
    """

    pattern: str
    target: ExecTarget
    fallback: ExecTarget | None = None
    line: int | None = None

    @property
    def is_glob(self) -> bool:
        """True if the route's pattern is a glob."""
        return is_glob(self.pattern)


class RouteTable(PatternTable[Route]):
    """The static routes of a config; `match(symbol) -> Route | None`."""

    def __init__(self, routes: Iterable[Route] = ()) -> None:
        routes = tuple(routes)
        super().__init__((route.pattern, route) for route in routes)
        self._routes = routes

    @property
    def routes(self) -> tuple[Route, ...]:
        """Every route, in definition order."""
        return self._routes

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RouteTable):
            return NotImplemented
        return self._routes == other._routes

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RouteTable({list(self._routes)!r})"


class PatternSet:
    """A set of names and globs, e.g. the functions security treats as sensitive."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self._patterns = tuple(patterns)
        self._table: PatternTable[str] = PatternTable((p, p) for p in self._patterns)
        # asked for every routed call's names: answers memoized, bounded
        self._member = functools.lru_cache(maxsize=4096)(self._matches)

    def _matches(self, name: str) -> bool:
        return self._table.match(name) is not None

    @property
    def patterns(self) -> tuple[str, ...]:
        """The patterns, in definition order."""
        return self._patterns

    def matching(self, name: str) -> str | None:
        """Return the most specific pattern that matches `name`, or None."""
        return self._table.match(name)

    def __contains__(self, name: object) -> bool:
        return bool(self._patterns) and isinstance(name, str) and bool(self._member(name))

    def __len__(self) -> int:
        return len(self._patterns)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PatternSet):
            return NotImplemented
        return self._patterns == other._patterns

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PatternSet({list(self._patterns)!r})"
