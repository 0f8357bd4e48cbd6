"""Remote RTFS execution, the plain core (no Ray): one plan step run on this node for a caller
from outside it.

A step is RTFS source, or an L4 reference: an interface hash with a pinned blob id, and the
arguments as RTFS text. `StepRunner.run(request)` runs it in a fresh VM over this node's
runtime parts (its providers and its L4 library, opened once with this node's trusted and
revoked keys) and answers a `StepReply`; it never raises for the step's own failure.

- **Remote for every security rule.** The step's runtime is built with
  `remote_caller=RemoteCaller(origin)` (see `delegation.remotecaller`): a sensitive function
  of this node, or one of its models or providers, is refused; the step writes nothing here
  (no plans, no outcomes, no published code: `read_only`), and its L1 plans and learned
  outcomes are its own, so a remote caller cannot steer this node's later decisions.
- **Verified code.** An L4 reference runs only when the index of this node finds a version of
  the interface with exactly that blob, signed by a key this node trusts and has not revoked,
  and its bytes match the signed SHA-256; otherwise the reply says why (`UntrustedCode`,
  `NotFound`).
- **Bounded.** The VM stops the step at its deadline (`DeadlineExceeded`, cooperatively, at
  calls and inside loops); the printed value may be at most `max_value_chars` long
  (`OutputTooLarge`), and what the step prints is kept up to `max_output_chars`.

`parse_request(body)` reads the HTTP endpoint's JSON body (`cluster.http`); `StepReply.status`
is the HTTP status of a reply.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cluster.errors import ClusterError
from delegation.codelib import CodeLibrary
from delegation.config import DEFAULT_TOML, DelegationConfig, parse_config
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

DEFAULT_SOURCE = "<built-in default>"  # the source of `delegation.config.default_config()`
DOWN_FOR_S = 30.0
"""How long an L4 store found down is skipped before a step asks it again (unless configured)."""

MAX_BODY_BYTES = 1 << 20
"""The largest request body the HTTP endpoint reads (1 MiB; larger: 413)."""

_HEX32 = re.compile(r"[0-9a-f]{32}")
_KEYS = ("source", "interface", "blob", "args", "deadline_ms")


# --- errors ---------------------------------------------------------------------------------

class BadStepRequest(ClusterError, ValueError):
    """A step request that cannot be run as given (HTTP 400): `reason` names the problem."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class OutputTooLarge(ClusterError, ValueError):
    """A step whose printed value is longer than the node allows."""

    def __init__(self, limit_chars: int) -> None:
        super().__init__(limit_chars)
        self.limit_chars = limit_chars

    def __str__(self) -> str:
        return f"the step's value prints longer than {self.limit_chars} characters"


class UntrustedCode(ClusterError, PermissionError):
    """An L4 reference whose version does not verify on the executing node."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(what, reason)
        self.what = what
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.what} refused on this node: {self.reason}"


class CodeNotFound(ClusterError, LookupError):
    """An L4 reference that names no published version this node can see."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(what, reason)
        self.what = what
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.what}: {self.reason}"


STEP_ERRORS: tuple[type[ClusterError], ...] = (BadStepRequest, OutputTooLarge, UntrustedCode,
                                               CodeNotFound)


# --- requests and replies -------------------------------------------------------------------

@dataclass(frozen=True)
class StepLimits:
    """What one step may take on this node.

    Attributes:
        default_deadline_s: a request that names no deadline gets this one.
        max_deadline_s: the longest deadline a request may ask for.
        max_value_chars: the longest printed value a step may answer.
        max_output_chars: what the step prints (`println`) is kept up to this, then cut.
    """

    default_deadline_s: float = 30.0
    max_deadline_s: float = 600.0
    max_value_chars: int = 1 << 20
    max_output_chars: int = 64 << 10


@dataclass(frozen=True)
class StepSettings:
    """How a node that runs steps is configured, in a form that crosses processes (a
    `DelegationConfig` does not pickle): the configuration's text, where it came from, and the
    limits. Each executing process builds its `StepRunner` from it, so key list files and the
    state directory are read where the steps run.
    """

    config_text: str
    config_source: str
    base_dir: str
    state_dir: str
    limits: StepLimits = StepLimits()

    @classmethod
    def of(cls, config: DelegationConfig, limits: StepLimits = StepLimits()) -> StepSettings:
        """The settings of a loaded configuration (its file is read again, or the built-in
        default's text is used).

        Raises:
            ConfigError: the file can no longer be read.
        """
        if config.source == DEFAULT_SOURCE:
            text = DEFAULT_TOML
        else:
            try:
                text = Path(config.source).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                raise ConfigError(f"cannot read the file again: {err}", config.source) from err
        return cls(text, config.source, str(config.base_dir), str(config.state_dir), limits)

    def config(self) -> DelegationConfig:
        """The configuration, validated again here.

        Raises:
            ConfigError: it does not validate here (e.g. a key list file missing on this node).
        """
        return parse_config(self.config_text, source=self.config_source,
                            base_dir=self.base_dir, state_dir=self.state_dir)

    def runner(self, *, origin: str, node: str) -> StepRunner:
        """A `StepRunner` for this node (see `StepRunner`)."""
        return StepRunner(self.config(), limits=self.limits, origin=origin, node=node)


@dataclass(frozen=True)
class StepRequest:
    """One step: `source`, or `interface` + `blob` (+ `args`, RTFS text each).

    `deadline_s` is the time the step may run, from when it starts here (None: the node's
    default). A deadline never crosses machines as an absolute time.
    """

    source: str | None = None
    interface: str | None = None
    blob: str | None = None
    args: tuple[str, ...] = ()
    deadline_s: float | None = None

    def check(self, limits: StepLimits) -> None:
        """Raise `BadStepRequest` unless this is one well-formed step within `limits`."""
        if (self.source is None) == (self.interface is None and self.blob is None):
            raise BadStepRequest("give either 'source' or 'interface' and 'blob'")
        if self.source is None:
            for key in ("interface", "blob"):
                value = getattr(self, key)
                if not isinstance(value, str) or not _HEX32.fullmatch(value):
                    raise BadStepRequest(f"'{key}' must be 32 lowercase hex digits "
                                         "(an xxh3_128 hash)")
        elif self.args:
            raise BadStepRequest("'args' go with 'interface' and 'blob', not with 'source'")
        if self.deadline_s is not None and not 0 < self.deadline_s <= limits.max_deadline_s:
            raise BadStepRequest(f"'deadline_ms' must be from 1 to "
                                 f"{int(limits.max_deadline_s * 1000)}")


@dataclass(frozen=True)
class StepReply:
    """What a step answered: its printed value, or its error's type and message.

    `output` is what the step printed (cut at the node's limit); `node` names the node that
    ran it; `elapsed_s` is how long it ran there.
    """

    ok: bool
    value: str = ""
    error_type: str = ""
    message: str = ""
    output: str = ""
    node: str = ""
    elapsed_s: float = 0.0
    status: int = field(default=200)

    def to_json(self) -> dict[str, Any]:
        """The HTTP answer: `{"ok": true, "value": ...}` or `{"ok": false, "error": {...}}`
        (with `"output"` when the step printed something)."""
        body: dict[str, Any] = ({"ok": True, "value": self.value} if self.ok else
                                {"ok": False,
                                 "error": {"type": self.error_type, "message": self.message}})
        if self.output:
            body["output"] = self.output
        return body


def failed(error_type: str, message: str, status: int, **extra: Any) -> StepReply:
    """A reply for a step that failed (or was never run)."""
    return StepReply(False, error_type=error_type, message=message, status=status, **extra)


def parse_request(body: bytes, limits: StepLimits = StepLimits()) -> StepRequest:
    """The step in an HTTP request body (JSON, at most `MAX_BODY_BYTES`).

    Raises:
        BadStepRequest: not a JSON object of the known keys with well-typed values (the
            reason names the key).
    """
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise BadStepRequest(f"the body is not UTF-8: {err.reason}") from None
    except ValueError as err:
        raise BadStepRequest(f"the body is not JSON: {err}") from None
    except RecursionError:
        raise BadStepRequest("the body is nested too deeply") from None
    if not isinstance(data, dict):
        raise BadStepRequest("the body must be a JSON object")
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise BadStepRequest(f"unknown key {unknown[0]!r} (known: {', '.join(_KEYS)})")
    request = StepRequest(_optional_str(data, "source"), _optional_str(data, "interface"),
                          _optional_str(data, "blob"), _args(data), _deadline_s(data))
    request.check(limits)
    return request


def _optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise BadStepRequest(f"{key!r} must be a string")
    return value


def _args(data: Mapping[str, Any]) -> tuple[str, ...]:
    args = data.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise BadStepRequest("'args' must be a list of strings (RTFS text of each argument)")
    return tuple(args)


def _deadline_s(data: Mapping[str, Any]) -> float | None:
    value = data.get("deadline_ms")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadStepRequest("'deadline_ms' must be a positive integer (milliseconds)")
    return value / 1000.0


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

    def __init__(self, config: DelegationConfig, *, limits: StepLimits = StepLimits(),
                 origin: str = "remote", node: str = "",
                 environ: Mapping[str, str] | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        # A step uses no model, so the model result caches have nothing to do for it.
        self.config = replace(config, l2=replace(config.l2, enabled=False),
                              l3=replace(config.l3, enabled=False))
        self.limits = limits
        self.caller = RemoteCaller(origin)
        self.node = node
        self._monotonic, self._timer = monotonic, timer
        self.warnings: list[str] = []  # opening this node's parts (an L4 store that is down)
        base = self._runtime(io.StringIO(), environ=environ or {}, warn=self.warnings.append,
                             l4_index=self._open_index())
        self.registry, self.library = base.registry, base.library
        if self.library is None:  # L4 off, or its store could not be opened: not per step
            self.config = replace(self.config, enable_l4_cache=False)

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
