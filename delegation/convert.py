"""Values between RTFS and model providers: a call's arguments as a prompt and parameters,
a provider's plain answer as an RTFS value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rtfs.printer import to_display
from rtfs.values import Keyword, Map, RList


def prompt_of(args: tuple[Any, ...]) -> tuple[str, dict[str, Any]]:
    """A model call's prompt (its arguments as text) and parameters (a trailing map)."""
    params: dict[str, Any] = {}
    if args and isinstance(args[-1], Map):
        params = {_param_name(k): v for k, v in args[-1].items()}
        args = args[:-1]
    return " ".join(to_display(a) for a in args), params


def _param_name(key: Any) -> str:
    name = key.name if isinstance(key, Keyword) else str(key)
    return name.replace("-", "_")


class _Nil:
    """The type of `NIL`."""

    def __repr__(self) -> str:
        return "NIL"


NIL = _Nil()
"""A provider's `ModelResult.value` meaning the RTFS value nil (a value of None means "no
structured answer: use the text")."""


def to_rtfs(value: Any) -> Any:
    """A provider's plain answer as an RTFS value (dicts -> maps with keyword keys); an
    answer that already is an RTFS map or list (a remote RTFS step's value) is kept as is."""
    if isinstance(value, Map) or type(value) is RList:
        return value
    if value is NIL:
        return None
    if isinstance(value, Mapping):
        return Map((Keyword(str(k)), to_rtfs(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(to_rtfs(v) for v in value)
    return value
