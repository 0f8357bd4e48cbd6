"""Remote RTFS execution, the plain core (no Ray): one plan step run on this node for a caller
from outside it.

A step (`cluster.steps.StepRequest`) is RTFS source, or an L4 reference: an interface hash
with a pinned blob id, and the arguments as RTFS text. `StepRunner.run(request)` runs it in
a fresh VM over this node's runtime parts (its providers and its L4 library, opened once with
this node's trusted and revoked keys) and answers a `StepReply`; it never raises for the
step's own failure.

- **Remote for every security rule.** The step's runtime is built with
  `remote_caller=RemoteCaller(origin)` (see `delegation.remotecaller`): a sensitive function
  of this node, or one of its models or providers, is refused; the step writes nothing here
  (no plans, no outcomes, no published code: `read_only`), and its L1 plans and learned
  outcomes are its own, so a remote caller cannot steer this node's later decisions.
- **Verified code.** An L4 reference runs only when the index of this node finds a version of
  the interface with exactly that blob, signed by a key this node trusts and has not revoked,
  and its bytes match the signed SHA-256; otherwise the reply says why (`UntrustedCode`,
  `CodeNotFound`).
- **Bounded.** The VM stops the step at its deadline (`DeadlineExceeded`, cooperatively, at
  calls and inside loops); the printed value may be at most `max_value_chars` long
  (`OutputTooLarge`), and what the step prints is kept up to `max_output_chars`.

Requests, replies and the errors a step is refused with are in `cluster.steps`; `reply_for`
maps a step's error to its reply and HTTP status.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import IO, Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cluster.errors import ClusterError
from cluster.steps import (
    BadStepRequest,
    CodeNotFound,
    OutputTooLarge,
    StepLimits,
    StepReply,
    StepRequest,
    StepSettings,
    UntrustedCode,
    failed,
)
from delegation.codelib import CodeLibrary
from delegation.config import DelegationConfig
from delegation.errors import (
    CallUnavailable,
    ConfigError,
    DelegationError,
    SecurityViolation,
    StorageFailure,
)
from delegation.l1 import L1PlanCache
from delegation.learning import Learner
from delegation.remotecaller import RemoteCaller
from delegation.runtime import Runtime
from rtfs import deadline as deadlines
from rtfs.deadline import CHECK_EVERY, Deadline
from rtfs.errors import DeadlineExceeded, HostError, RtfsError, RtfsSyntaxError
from rtfs.printer import to_readable_within
from rtfs.reader import read
from rtfs.values import Closure
from storage import (
    BackendNotInstalled,
    SigningKeyError,
    StorageError,
    StoreURIError,
    open_l4,
)
from storage.signing import store_key_path

DOWN_FOR_S = 30.0
"""How long an L4 store found down is skipped before a step asks it again (unless configured)."""

# --- running --------------------------------------------------------------------------------

class BoundedText(io.TextIOBase):
    """Where a step's `println` goes: kept up to `max_chars`, the rest dropped."""

    def __init__(self, max_chars: int) -> None:
        super().__init__()
        self._parts: list[str] = []
        self._left = max_chars
        self.cut = False

    def write(self, text: str) -> int:
        kept = text[: max(0, self._left)]
        if kept:
            self._parts.append(kept)
            self._left -= len(kept)
        if len(kept) < len(text):
            self.cut = True
        return len(text)

    def getvalue(self) -> str:
        return "".join(self._parts) + (" ..." if self.cut else "")


class StepRunner:
    """Runs steps for callers from outside this node (see the module docstring); thread-safe.

    Args:
        config: this node's configuration: its L4 store and keys, its security patterns, its
            providers (which steps may not use).
        limits: deadlines and output bounds.
        origin: who the steps come from, for messages (`http`, `ray task`).
        node: this node's name in replies.
        environ: what providers are built with (default: nothing: steps use no provider,
            so no secret is read).
        monotonic: the deadline's clock; timer: measures `elapsed_s`.

    Raises:
        ConfigError: the configured L4 store or a key cannot be used.
    """

    def __init__(self, config: DelegationConfig, *, limits: StepLimits | None = None,
                 origin: str = "remote", node: str = "",
                 environ: Mapping[str, str] | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        # A step uses no model, so the model result caches have nothing to do for it.
        self.config = replace(config, l2=replace(config.l2, enabled=False),
                              l3=replace(config.l3, enabled=False))
        self.limits = limits or StepLimits()
        self.caller = RemoteCaller(origin)
        self.node = node
        self._monotonic, self._timer = monotonic, timer
        self.warnings: list[str] = []  # opening this node's parts (an L4 store that is down)
        base = self._runtime(io.StringIO(), environ=environ or {}, warn=self.warnings.append,
                             l4_index=self._open_index())
        self.registry, self.library = base.registry, base.library
        if self.library is None:  # L4 off, or its store could not be opened: not per step
            self.config = replace(self.config, enable_l4_cache=False)

    @classmethod
    def from_settings(cls, settings: StepSettings, *, origin: str, node: str) -> StepRunner:
        """The runner a node's `StepSettings` describe (the configuration validated here).

        Raises:
            ConfigError: it does not validate here (e.g. a key list file missing here).
        """
        return cls(settings.config(), limits=settings.limits, origin=origin, node=node)

    def _open_index(self) -> Any:
        """This node's L4 index, opened with its trusted and revoked keys (None when L4 is
        off). A store found down is asked again after `down_for_s` (30 s unless configured):
        an executor lives long. Steps never publish, so no signing key is created here."""
        l4 = self.config.l4
        if not self.config.enable_l4_cache:
            return None
        existing = store_key_path(self.config.state_dir, l4.store_uri)
        signing_key = l4.signing_key or (existing if existing.is_file()
                                         else Ed25519PrivateKey.generate())
        try:
            return open_l4(l4.store_uri, signing_key=signing_key,
                           connect_timeout_s=l4.connect_timeout_s,
                           read_timeout_s=l4.read_timeout_s,
                           down_for_s=l4.down_for_s or DOWN_FOR_S, timer=self._monotonic,
                           trusted_keys=[k for ref in l4.trusted_keys for k in ref.keys],
                           revoked_keys=[k for ref in l4.revoked_keys for k in ref.keys],
                           state_dir=self.config.state_dir)
        except (SigningKeyError, StoreURIError, BackendNotInstalled) as err:
            raise ConfigError(str(err), self.config.source, ("delegation", "l4")) from err
        except (StorageError, OSError) as err:
            self.warnings.append(f"L4 store {l4.store_uri} cannot be opened "
                                 f"({getattr(err, 'strerror', None) or err}): steps run "
                                 "without L4")
            return None

    def _runtime(self, out: io.TextIOBase, **parts: Any) -> Runtime:
        if "environ" not in parts:
            # A library per step: what a name resolves to is fixed for one run only, so a
            # long-lived node sees versions published after it started (the index is shared).
            parts.update(registry=self.registry, library=(
                CodeLibrary(self.library.index) if self.library is not None else None))
        return Runtime(self.config, out=cast(IO[str], out),
                       plans=L1PlanCache(self.config.cache_ttl_s, 1000, timer=self._monotonic),
                       learner=Learner(), read_only=True, remote_caller=self.caller,
                       monotonic=self._monotonic, **parts)

    def run(self, request: StepRequest) -> StepReply:
        """Run one step; its value or its error, never an exception."""
        started = self._timer()
        out = BoundedText(self.limits.max_output_chars)
        try:
            request.check(self.limits)
            deadline = Deadline.after(request.deadline_s or self.limits.default_deadline_s,
                                      clock=self._monotonic)
            runtime = self._runtime(out)
            value = (self._source(runtime, request.source, deadline)
                     if request.source is not None
                     else self._published(runtime, request, deadline))
            text = _printed(value, self.limits.max_value_chars, deadline)
        except Exception as err:  # noqa: BLE001 - every failure is the reply's error
            return replace(reply_for(err), output=out.getvalue(), node=self.node,
                           elapsed_s=self._timer() - started)
        return StepReply(True, text, output=out.getvalue(), node=self.node,
                         elapsed_s=self._timer() - started)

    def _source(self, runtime: Runtime, source: str, deadline: Deadline) -> Any:
        return runtime.run(source, deadline=deadline).value

    def _published(self, runtime: Runtime, request: StepRequest, deadline: Deadline) -> Any:
        assert request.interface is not None and request.blob is not None
        code = self._verified(request.interface, request.blob)
        if self.config.security.is_sensitive(code.name):
            raise SecurityViolation(code.name, f"{code.name} is sensitive: a step run for a "
                                               f"{self.caller.origin} caller may not call it")
        args = self._arguments(runtime, request.args, deadline)
        runtime.router.executor.bind_dependencies(code, runtime.vm)
        runtime.vm.define(code.name, Closure(code, (), code.name))
        return runtime.route_call(code.name, args, deadline=deadline)

    def _verified(self, interface: str, blob: str) -> Any:
        """The published function's code, verified by this node's index, or why not."""
        what = f"interface {interface} blob {blob}"
        if self.library is None:
            raise CodeNotFound(what, "L4 is off on this node")
        found = self.library.index.lookup_interface(interface, pin_blob_id=blob)
        if found is None:
            raise self._why_missing(what, interface, blob)
        return self.library.decode(found.record.blob_id, found.data)

    def _why_missing(self, what: str, interface: str, blob: str) -> ClusterError:
        assert self.library is not None
        index = self.library.index
        versions = [r for r in index.versions(interface) if r.blob_id == blob]
        if not versions:
            return CodeNotFound(what, f"not published in {self.library.store_uri}")
        status = index.keyring.status(versions[0].key_id)
        if status != "trusted":
            return UntrustedCode(what, f"signed by key {versions[0].key_id}, which this node "
                                       + ("has revoked" if status == "revoked"
                                          else "does not trust"))
        return UntrustedCode(what, "its signature, digest or bytes do not verify")

    def _arguments(self, runtime: Runtime, args: tuple[str, ...], deadline: Deadline
                   ) -> list[Any]:
        """Each argument's RTFS text, read (one form each) and evaluated in the step's VM."""
        for i, text in enumerate(args):
            forms = read(text)
            if len(forms) != 1:
                raise BadStepRequest(f"args[{i}] must be one RTFS form, not {len(forms)}")
        if not args:
            return []
        return list(runtime.run("[" + "\n".join(args) + "]", deadline=deadline).value)


class _PrintBudget:
    """Printing a large value takes time too: it counts against the step's deadline (the
    printer counts its items through `rtfs.deadline.checked`)."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline: Deadline | None = deadline
        self._ticks = CHECK_EVERY

    def tick(self, steps: int = 1) -> None:
        self._ticks -= steps
        if self._ticks < 0:
            self._ticks = CHECK_EVERY
            if self.deadline is not None and self.deadline.expired():
                raise DeadlineExceeded("deadline exceeded while printing the step's value")


def _printed(value: Any, max_chars: int, deadline: Deadline) -> str:
    """The value's RTFS text, within `max_chars` and the deadline."""
    previous = deadlines.swap(_PrintBudget(deadline))
    try:
        text = to_readable_within(value, max_chars)
    finally:
        deadlines.swap(previous)
    if text is None:
        raise OutputTooLarge(max_chars)
    return text


# --- errors as replies ----------------------------------------------------------------------

_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (DeadlineExceeded, 504),
    (RtfsSyntaxError, 400),
    (BadStepRequest, 400),
    (SecurityViolation, 403),
    (UntrustedCode, 403),
    (CodeNotFound, 404),
    (OutputTooLarge, 422),
    (StorageError, 503),
    (StorageFailure, 503),
    (CallUnavailable, 503),
    (RtfsError, 422),
    (DelegationError, 422),
)


def reply_for(err: BaseException) -> StepReply:
    """The reply for a step that raised `err`: the type and message of what went wrong (a
    host error's cause: what the router refused or failed at), and its HTTP status."""
    cause: BaseException = err
    while isinstance(cause, HostError) and cause.__cause__ is not None:
        cause = cause.__cause__
    for kind, status in _STATUS:
        if isinstance(cause, kind):
            return failed(type(cause).__name__, str(cause), status)
    return failed("InternalError", f"{type(cause).__name__}: {cause}", 500)
