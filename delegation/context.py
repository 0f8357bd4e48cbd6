"""The call context: what a decision looks at, and the fingerprints that key the L1 cache.

- `arg_type_fingerprint`: xxh3_64 of the canonical type signature of the RTFS arguments.
- `runtime_context_hash`: xxh3_64 of the policy version, the providers available now, the
  security level, the digest of the call's decision-relevant metadata and the fingerprint of
  its declared context (run context plus `^{:context {...}}`), so that a plan cached under
  one context is never used under another (DESIGN.md, "Keys").
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack
import xxhash

from delegation.config import DelegationConfig
from delegation.errors import MetadataError
from delegation.health import HealthMonitor
from delegation.l1 import task_key
from delegation.l3.context import EMPTY_CONTEXT, Context, make_context
from delegation.metadata import EMPTY_METADATA, DelegationMetadata
from delegation.targets import ExecTarget
from rtfs.router import CallKind, RoutedCall
from rtfs.values import DelegationHint, Keyword, Map, Symbol, type_signature

FINGERPRINT_FORMAT = 1
AVAILABILITY_TTL_S = 1.0


@dataclass(slots=True)  # not frozen: built per call; frozen init costs ~10x. Read-only.
class CallContext:
    """One call, as the engine sees it.

    Attributes:
        symbol: the callee's name (or the capability id): the L1 "agent".
        arg_type_fingerprint: see the module docstring.
        runtime_context_hash: see the module docstring.
        metadata: the call's validated metadata (empty when it has none).
        hint: the callee's `^:delegation` hint, if any.
        sensitive: the call must never reach a remote provider (metadata or policy).
        has_source: the callee is an RTFS function compiled on this node.
        is_capability: a `(call :capability ...)` rather than a function call.
        semantic_hash: optional hash of the input's meaning (for the L2 layer).
        context: the declared context (the run's, with the call's `:context` on top); L3
            keys on it.
    """

    symbol: str
    arg_type_fingerprint: int
    runtime_context_hash: int
    metadata: DelegationMetadata = EMPTY_METADATA
    hint: DelegationHint | None = None
    sensitive: bool = False
    has_source: bool = False
    is_capability: bool = False
    semantic_hash: int | None = None
    context: Context = EMPTY_CONTEXT

    @property
    def task(self) -> str:
        """The L1 task key: hex(arg fingerprint XOR runtime context hash)."""
        return task_key(self.arg_type_fingerprint, self.runtime_context_hash)


def arg_type_fingerprint(args: Iterable[Any]) -> int:
    return _signature_fingerprint(tuple([type_signature(a) for a in args]))


@functools.lru_cache(maxsize=4096)
def _signature_fingerprint(signature: tuple[str, ...]) -> int:
    return xxhash.xxh3_64_intdigest(msgpack.packb([FINGERPRINT_FORMAT, list(signature)]))


def runtime_context_hash(policy_version: str, providers: Iterable[str], security_level: str,
                         metadata_digest: int, context_fingerprint: str = "") -> int:
    fields = [FINGERPRINT_FORMAT, policy_version, sorted(providers), security_level,
              metadata_digest]
    if context_fingerprint:  # no context: the hash every plan stored before L3 has
        fields.append(context_fingerprint)
    return xxhash.xxh3_64_intdigest(msgpack.packb(fields))


def metadata_from_rtfs(meta: Mapping[Any, Any] | None,
                       extra: Iterable[tuple[str, Any]] = ()) -> DelegationMetadata:
    """Call-site metadata (`^{:complexity :high}`) plus hint extras as `DelegationMetadata`.

    Keyword keys and values become strings; nested maps become dicts (for `:context`).

    Raises:
        MetadataError: an unknown key or an invalid value, named.
    """
    if not meta and not extra:
        return EMPTY_METADATA  # the common case: a call written without ^{...}
    plain: dict[str, Any] = {}
    for key, value in [*(meta or {}).items(), *extra]:
        name = key.name if isinstance(key, (Keyword, Symbol)) else key
        if not isinstance(name, str):
            raise MetadataError(str(key), value, "metadata keys must be keywords")
        plain[name] = _plain(value)
    return DelegationMetadata.from_mapping(plain) if plain else EMPTY_METADATA


def _plain(value: Any) -> Any:
    if isinstance(value, (Keyword, Symbol)):
        return value.name
    if isinstance(value, Map):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


class ContextFactory:
    """Builds `CallContext`s.

    The "available providers" in the runtime context hash are the configured model targets
    whose circuit is not open: known without I/O, so building a context never waits on a
    provider's health check (those run only for the target a decision picks).
    """

    def __init__(self, config: DelegationConfig, health: HealthMonitor,
                 targets: Iterable[ExecTarget], clock: Callable[[], float]) -> None:
        self.config = config
        self.health = health
        self.targets = tuple(targets)
        self.clock = clock
        self._available: tuple[float, tuple[str, ...]] | None = None
        self._hash = functools.lru_cache(maxsize=4096)(self._runtime_hash)

    def available(self) -> tuple[str, ...]:
        now = self.clock()
        cached = self._available
        if cached is None or now - cached[0] > AVAILABILITY_TTL_S:
            ids = tuple(sorted(str(t) for t in self.targets if self.health.circuit_ok(t)))
            cached = self._available = (now, ids)
        return cached[1]

    def runtime_hash(self, meta: DelegationMetadata, context: Context = EMPTY_CONTEXT) -> int:
        fingerprint = context.fingerprint if context.values else ""
        return self._hash(self.available(), meta.digest(), fingerprint)  # type: ignore[no-any-return]

    def _runtime_hash(self, available: tuple[str, ...], digest: int, fingerprint: str) -> int:
        return runtime_context_hash(self.config.policy_version, available,
                                    str(self.config.security.level), digest, fingerprint)

    def call_context(self, meta: DelegationMetadata) -> Context:
        """The run's context with the call's `:context` keys on top.

        Raises:
            ContextError: a bad key or value in the call's `:context`.
        """
        if not meta.context:
            return self.config.context
        return self.config.context.merged(make_context(meta.context))

    def build(self, call: RoutedCall) -> CallContext:
        return self.context(call.name, call.args, call.metadata, call.hint,
                            has_source=call.callee is not None,
                            is_capability=call.kind is CallKind.CAPABILITY, names=call.names)

    def context(self, symbol: str, args: tuple[Any, ...], metadata: Any,
                hint: DelegationHint | None, *, has_source: bool,
                is_capability: bool = False, names: Iterable[str] = ()) -> CallContext:
        """The context of a call of `symbol`; `metadata` is the RTFS `^{...}` map (or None).

        The call is sensitive if the call site says so (`^{:sensitive true}`, or a sensitive
        pattern matching `symbol`, the name written there) or if the function called is: any
        of its own `names` (its defn name, every global it was defined under, what a
        `partial`/`comp` wraps) matches a sensitive pattern. A call site can add
        sensitivity, never remove it.
        """
        meta = metadata_from_rtfs(metadata, hint.extra if hint is not None else ())
        security = self.config.security
        sensitive = (meta.sensitive or security.is_sensitive(symbol)
                     or any(security.is_sensitive(name) for name in names))
        context = self.call_context(meta)
        return CallContext(
            symbol=symbol, arg_type_fingerprint=arg_type_fingerprint(args),
            runtime_context_hash=self.runtime_hash(meta, context), metadata=meta, hint=hint,
            sensitive=sensitive, has_source=has_source, is_capability=is_capability,
            context=context)
