"""Steps run for a caller from outside this node: what they may not touch here.

A plan step that another node sends here (a Ray task), or that an HTTP client posts, runs in
this node's VM but for someone else: whatever it computes goes back to that caller. For every
security rule it counts as *remote*, so it may not reach what this node keeps to itself:

- **sensitive functions** (a `[delegation.security] sensitive` pattern matching the name
  called or any of the callee's own names, or a call site marked `^{:sensitive true}`): a
  routed call to one is refused, and a builtin this node marks sensitive is replaced in the
  step's VM by one that refuses, so it cannot be reached as a value either (`(map f xs)`);
  published code bound in from L4 never binds a sensitive dependency (see
  `Runtime(remote_caller=...)`);
- **this node's capabilities**: its local models and remote providers (their API keys and
  their cost are this node's), unless the policy lists the capability in
  `allowed_capabilities`.

What stays allowed is the step's own code, the standard library and verified L4 code. The
rule is an engine wrapper, outermost, so no other layer (plans, fallbacks, health) can route
around it; a refused call raises `SecurityViolation` like any call the security context
refuses.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from delegation.configtypes import SecurityConfig
from delegation.context import CallContext
from delegation.engine import Decision, Engine, Layer
from delegation.errors import SecurityViolation
from delegation.routes import PatternSet
from delegation.targets import ExecTarget, LocalModel, RemoteModel
from rtfs.errors import HostError
from rtfs.values import Builtin


@dataclass(frozen=True)
class RemoteCaller:
    """Who a step runs for, when it came from outside this node.

    Attributes:
        origin: how it came, for messages (`http`, `ray task`, a node id).
        allowed_capabilities: capabilities (or routed function names) whose model or provider
            such a step may still use here; empty by default: none.
    """

    origin: str = "remote"
    allowed_capabilities: frozenset[str] = frozenset()


def remote_caller_problem(caller: RemoteCaller, ctx: CallContext,
                          target: ExecTarget | None) -> str | None:
    """Why a step run for `caller` may not make the call `ctx` on `target`, or None."""
    if ctx.sensitive:
        return (f"{ctx.symbol} is sensitive: a step run for a {caller.origin} caller may not "
                "call it")
    if isinstance(target, (LocalModel, RemoteModel)) and (
            ctx.symbol not in caller.allowed_capabilities):
        return (f"{target} is this node's: a step run for a {caller.origin} caller may not "
                f"use it for {ctx.symbol}")
    return None


class RemoteCallerEngine:
    """The remote-caller rule on top of a runtime's engine (see the module docstring).

    A forbidden target makes the decision a refusal (`Layer.SECURITY`, no target); a
    forbidden fallback is withheld, so a failing target cannot hand the call to it.
    """

    def __init__(self, inner: Engine, caller: RemoteCaller) -> None:
        self.inner = inner
        self.caller = caller

    def decide(self, ctx: CallContext) -> Decision:
        decision = self.inner.decide(ctx)
        problem = remote_caller_problem(self.caller, ctx, decision.target)
        if problem is not None:
            return Decision(None, Layer.SECURITY, f"refused: {problem}", replaced=decision)
        if decision.fallback is None:
            return decision
        withheld = remote_caller_problem(self.caller, ctx, decision.fallback)
        if withheld is None:
            return decision
        return replace(decision, fallback=None, withheld=withheld)


def refusing_builtins(names: Iterable[str], security: SecurityConfig,
                      caller: RemoteCaller) -> dict[str, Builtin]:
    """Stand-ins for the builtins among `names` that `security` marks sensitive: each
    refuses when called, however it was reached (a host error whose cause is the
    `SecurityViolation`)."""
    return {name: Builtin(name, _refuse(name, caller), pure=False)
            for name in _sensitive(security.sensitive.patterns, frozenset(names))}


@functools.lru_cache(maxsize=64)
def _sensitive(patterns: tuple[str, ...], names: frozenset[str]) -> tuple[str, ...]:
    """The names a step's VM starts with that the patterns mark sensitive (once per set of
    patterns: a runtime per step must not match every builtin name again)."""
    sensitive = PatternSet(patterns)
    return tuple(sorted(name for name in names if name in sensitive))


def _refuse(name: str, caller: RemoteCaller) -> Any:
    def refuse(*args: Any) -> Any:
        violation = SecurityViolation(name, f"{name} is sensitive: a step run for a "
                                            f"{caller.origin} caller may not call it")
        raise HostError(f"{name}: {violation}") from violation

    return refuse
