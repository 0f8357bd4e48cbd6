"""L3: the contextual cache, which learns per function and context which target serves best.

Submodules: `context` (`Context`, its fingerprint, `[delegation.context]` and `--context`),
`cache` (`ContextualCache`: discounted UCB over the targets policy allows), `config`
(`L3Config`, `[delegation.l3]`).
"""

from __future__ import annotations

from delegation.l3.cache import ContextualCache, L3Decision
from delegation.l3.config import L3Config
from delegation.l3.context import EMPTY_CONTEXT, Context, context_from_json, make_context

__all__ = [
    "EMPTY_CONTEXT",
    "Context",
    "ContextualCache",
    "L3Config",
    "L3Decision",
    "context_from_json",
    "make_context",
]
