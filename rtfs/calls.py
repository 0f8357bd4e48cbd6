"""What every way of calling a function shares: binding arguments, arity errors, applying
data as a function, and a call site's routing claim. Used by the VM loop and by translated
code (rtfs.fast), so that both raise the same errors with the same messages."""

from __future__ import annotations

from typing import Any

from rtfs.bytecode import Code
from rtfs.errors import ArityError, RtfsRecursionError, RtfsTypeError
from rtfs.ops import get_or
from rtfs.printer import preview
from rtfs.router import CallRouter, Claim
from rtfs.values import Builtin, Keyword, type_name

NOT_CLAIMED, ONCE, ALWAYS = int(Claim.NO), int(Claim.ONCE), int(Claim.ALWAYS)

MISSING = object()
"""What a lookup of an unbound global gives."""


def bind_args(code: Code, args: list[Any], caller: Code | None, pc: int | None) -> list[Any]:
    """The new frame's locals: parameters first, `& rest` after them, the rest unset."""
    nparams = len(code.params)
    argc = len(args)
    if code.rest is None:
        if argc != nparams:
            raise arity_error(code, argc, caller, pc)
        if code.nlocals > argc:
            args.extend([None] * (code.nlocals - argc))
        return args
    if argc < nparams:
        raise arity_error(code, argc, caller, pc)
    rest = tuple(args[nparams:]) or None
    del args[nparams:]
    args.append(rest)
    args.extend([None] * (code.nlocals - nparams - 1))
    return args


def arity_error(code: Code, argc: int, caller: Code | None = None,
                pc: int | None = None) -> ArityError:
    wanted = f"{len(code.params)}{'+' if code.rest else ''}"
    line, col = caller.position(pc) if caller is not None and pc is not None else (None, None)
    return ArityError(f"{code.name} takes {wanted} argument(s), got {argc}", line, col)


def too_deep(max_depth: int) -> RtfsRecursionError:
    return RtfsRecursionError(f"calls nested deeper than {max_depth} (runaway recursion?)")


def claim(router: CallRouter, site: Any) -> int:
    """How calls at `site` go through `router`; a call written with `^{...}` metadata is
    always routed, since metadata is there to inform the decision."""
    answer = int(router.claims(site.name))
    return ALWAYS if site.meta and answer == NOT_CLAIMED else answer


def builtin_accepts(fn: Builtin, argc: int) -> bool:
    return fn.min_args <= argc and (fn.max_args is None or argc <= fn.max_args)


def check_builtin_arity(fn: Builtin, argc: int) -> None:
    if argc < fn.min_args or (fn.max_args is not None and argc > fn.max_args):
        if fn.max_args is None:
            wanted = f"at least {fn.min_args}"
        elif fn.min_args == fn.max_args:
            wanted = str(fn.min_args)
        else:
            wanted = f"{fn.min_args} to {fn.max_args}"
        raise ArityError(f"{fn.name} takes {wanted} argument(s), got {argc}")


def apply_data(fn: Any, args: list[Any] | tuple[Any, ...]) -> Any:
    """Keywords, maps, vectors and sets are functions of their keys."""
    if type(fn) is Keyword or isinstance(fn, dict):
        if not 1 <= len(args) <= 2:
            raise ArityError(f"{preview(fn, 40)} as a function takes 1 or 2 arguments")
        default = args[1] if len(args) == 2 else None
        if type(fn) is Keyword:
            return get_or(args[0], fn, default)
        return get_or(fn, args[0], default)
    if type(fn) in (tuple, frozenset):
        if len(args) != 1:
            raise ArityError(f"a {type_name(fn)} as a function takes 1 argument")
        return get_or(fn, args[0], None)
    raise RtfsTypeError(f"{type_name(fn)} {preview(fn, 40)} is not a function")
