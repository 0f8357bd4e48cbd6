"""The `CallRouter` protocol: how the VM hands a call to whoever decides where it runs.

The VM asks a router about three kinds of call: a function with a `^:delegation` hint, a
`(call :capability ...)`, and a call of a global symbol the router `claims`. Every other call
runs in the VM directly; whether a call site needs the router is resolved once per site (and
again only when the router's `version` changes), so pure builtins never pay for a decision.
`rtfs` defines the protocol; the delegation engine implements it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any, Protocol, runtime_checkable

from rtfs.deadline import Deadline
from rtfs.errors import CapabilityError
from rtfs.values import DelegationHint, Map


class CallKind(StrEnum):
    FUNCTION = "function"
    CAPABILITY = "capability"


class Claim(IntEnum):
    """A router's answer to "do calls of this global go through you?" (`CallRouter.claims`).

    NO: the VM runs them itself. ALWAYS: every call is routed. ONCE: the decision is
    `LocalPure` whatever the arguments (e.g. a static route to the VM), so the first call at
    each call site is routed (decided, recorded, explained) and later calls at that site run
    in the VM directly, until the router's `version` changes. A hinted callee is routed
    whatever the claim.
    """

    NO = 0
    ALWAYS = 1
    ONCE = 2


@dataclass(slots=True)  # not frozen: built per call; frozen init costs ~10x. Read-only.
class RoutedCall:
    """One call the router decides on.

    name: the callee's symbol as written (or the capability id, without the colon).
    kind: a function call or a capability call.
    callee: the function value, or None when the symbol is unbound here or for capabilities.
    hint: the callee's delegation hint, if it has one.
    names: the callee's own names (`rtfs.values.own_names`: its defn name and every global it
        was defined under, or those of the functions a `partial`/`comp` wraps). Policy that
        follows the function (sensitivity) must look at these as well as `name`.
    metadata: the `^{...}` map written on the call form (empty when none).
    args: the evaluated arguments.
    run_local: runs the call in this VM (raises the VM's error when it cannot, e.g. an
        unbound symbol or an unknown capability); the router calls it for a local target.
    line, col: the call form's position.
    deadline: the deadline of the run making the call (None: no deadline); a router gives a
        remote target at most `deadline.remaining_s()` and stops waiting after that.
    """

    name: str
    kind: CallKind
    callee: Any
    hint: DelegationHint | None
    metadata: Map
    args: tuple[Any, ...]
    run_local: Callable[[], Any]
    line: int | None = None
    col: int | None = None
    names: frozenset[str] = frozenset()
    deadline: Deadline | None = None

    @property
    def code(self) -> Any:
        """The callee's `Code` when it is a compiled RTFS function, else None."""
        return getattr(self.callee, "code", None)


@runtime_checkable
class CallRouter(Protocol):
    """Decides where routed calls run.

    Attributes:
        version: changes whenever `claims` may answer differently (the VM's definitions
            included); call sites cache the answer per (router, version).
    """

    version: int

    def claims(self, name: str) -> Claim | bool:
        """Whether calls of the unhinted global `name` go through `route` (True = ALWAYS)."""
        ...

    def route(self, call: RoutedCall) -> Any:
        """Run `call` wherever it should run and return its value.

        Raises whatever the chosen target raised; the VM reports non-RTFS errors as
        `HostError` at the call's position.
        """
        ...


class LocalRouter:
    """The default: everything runs in the VM; a capability it was not given is an error."""

    version = 0

    def __init__(self, capabilities: dict[str, Callable[..., Any]] | None = None) -> None:
        self.capabilities = dict(capabilities or {})

    def claims(self, name: str) -> Claim | bool:
        return Claim.NO

    def route(self, call: RoutedCall) -> Any:
        if call.kind is CallKind.CAPABILITY:
            handler = self.capabilities.get(call.name)
            if handler is None:
                return call.run_local()
            return handler(*call.args)
        return call.run_local()


def unknown_capability(name: str) -> CapabilityError:
    return CapabilityError(f"unknown capability :{name}: no router or registry provides it")

