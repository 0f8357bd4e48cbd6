"""What a remote plan step is: the request, the reply, the node's limits and settings, the
HTTP body, and the errors a step is refused with (plain data, no Ray; `cluster.execute` runs
steps).

A request is RTFS source, or an L4 reference: an interface hash with a pinned blob id, and
the arguments as RTFS text, with the time it may run (`deadline_s`; a deadline never crosses
machines as an absolute time). A reply is the printed value, or the error's type and message,
with the HTTP status the endpoint answers (`cluster.http`). `StepSettings` carries a node's
configuration across processes as text (a `DelegationConfig` does not pickle).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster.errors import ClusterError
from delegation.config import DEFAULT_TOML, DelegationConfig, parse_config
from delegation.errors import ConfigError

DEFAULT_SOURCE = "<built-in default>"  # the source of `delegation.config.default_config()`
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
