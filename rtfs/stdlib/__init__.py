"""The standard library: every builtin function, registered by name in `BUILTINS`.

A builtin is a Python function; its RTFS arity comes from its signature. `needs_vm` builtins
get the calling `Execution` first, to call RTFS functions back (`map`, `reduce`, ...).
`pure` builtins neither have side effects nor wait on the outside world: a call site of a
pure builtin that no router claims never consults the router, and `parallel` does not start
threads for branches made only of pure calls.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from rtfs.values import Builtin

BUILTINS: dict[str, Builtin] = {}


def builtin(name: str, *, pure: bool = True, needs_vm: bool = False
            ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as the RTFS builtin `name`."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        params = list(inspect.signature(fn).parameters.values())[1 if needs_vm else 0:]
        positional = [p for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
        variadic = any(p.kind is p.VAR_POSITIONAL for p in params)
        required = sum(1 for p in positional if p.default is p.empty)
        BUILTINS[name] = Builtin(name, fn, required, None if variadic else len(positional),
                                 pure, needs_vm)
        return fn

    return register


def make_builtin(name: str, fn: Callable[..., Any], *, needs_vm: bool = False,
                 wraps: tuple[Any, ...] = ()) -> Builtin:
    """A variadic builtin value built at run time (`comp`, `partial`, ...); `wraps` lists the
    functions it calls (it is then not pure: they may be routed)."""
    return Builtin(name, fn, 0, None, not wraps, needs_vm, wraps)


from rtfs.stdlib import core, data, order, seqs, strings  # noqa: E402,F401 (registers on import)
