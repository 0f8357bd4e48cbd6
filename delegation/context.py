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
from rtfs.values import (
    Builtin,
    Closure,
    DelegationHint,
    Keyword,
    Map,
    RList,
    Symbol,
    type_signature,
)

FINGERPRINT_FORMAT = 1
AVAILABILITY_TTL_S = 1.0
_CAPABILITY = CallKind.CAPABILITY

# Types whose values' type signature (`rtfs.values.type_signature`) is the type's alone: a
# context is found by its arguments' types without naming each (a tagged literal, say, is
# signed by its tag and is looked up by signature).
_SIGNED_BY_TYPE = frozenset({type(None), bool, int, float, str, Keyword, Symbol, tuple, RList,
                             Map, frozenset, Closure, Builtin})


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


class CallSite:
    """The static part of the contexts of one call site: what follows from the name written
    there, the `^{...}` metadata, the callee's hint and own names, and the policy, worked out
    once (metadata validated, sensitivity, declared context, digests); only the argument
    types and the providers available now vary per call. Contexts built here are kept
    (read-only) per argument signature while the runtime hash stays the same."""

    __slots__ = ("context", "fingerprint", "has_source", "hint", "is_capability", "meta",
                 "metadata", "now", "sensitive", "stable", "symbol")

    MAX_CONTEXTS = 64  # argument signatures kept per site (a site rarely sees more than a few)

    def __init__(self, symbol: str, metadata: Any, meta: DelegationMetadata,
                 hint: DelegationHint | None, sensitive: bool, context: Context, *,
                 has_source: bool, is_capability: bool) -> None:
        self.symbol, self.metadata, self.meta, self.hint = symbol, metadata, meta, hint
        self.sensitive, self.context = sensitive, context
        self.has_source, self.is_capability = has_source, is_capability
        self.fingerprint = context.fingerprint if context.values else ""
        # (available providers, runtime hash, contexts by argument signature), replaced as a
        # whole when the availability changes (threads share a site)
        self.now: tuple[tuple[str, ...] | None, int, dict[Any, CallContext]] = (None, 0, {})
        # The router's: a decision for this site that depends on nothing a call's arguments
        # or the providers' availability change (`delegation.router`); opaque here.
        self.stable: Any = None


class ContextFactory:
    """Builds `CallContext`s.

    The "available providers" in the runtime context hash are the configured model targets
    whose circuit is not open: known without I/O, so building a context never waits on a
    provider's health check (those run only for the target a decision picks).

    `build` keeps the static part of each call site's context (`CallSite`), so a routed call
    pays for the argument types and the availability check, not for validating metadata,
    matching sensitive patterns or hashing the policy again.
    """

    MAX_SITES = 4096  # distinct call sites kept; past it the table starts over

    def __init__(self, config: DelegationConfig, health: HealthMonitor,
                 targets: Iterable[ExecTarget], clock: Callable[[], float]) -> None:
        self.config = config
        self.health = health
        self.targets = tuple(targets)
        self.clock = clock
        self._available: tuple[float, tuple[str, ...]] | None = None
        self._hash = functools.lru_cache(maxsize=4096)(self._runtime_hash)
        self._sites: dict[tuple[Any, ...], CallSite] = {}

    def available(self) -> tuple[str, ...]:
        now = self.clock()
        cached = self._available
        if cached is None or now - cached[0] > AVAILABILITY_TTL_S:
            ids = tuple(sorted(str(t) for t in self.targets if self.health.circuit_ok(t)))
            if cached is not None and cached[1] == ids:
                ids = cached[1]  # the same tuple: call sites keep their runtime hash
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
        """The context of a routed call (what `context` builds for it, kept per call site).

        Raises:
            MetadataError, ContextError: the call's metadata is invalid (never kept).
        """
        return self.context_at(self.site(call), call.args)

    def site(self, call: RoutedCall) -> CallSite:
        """The kept static part of `call`'s context (see `CallSite`).

        Raises:
            MetadataError, ContextError: the call's metadata is invalid (never kept).
        """
        metadata = call.metadata
        has_source = call.callee is not None
        # The metadata map is part of the key by identity (a site's map is a constant of its
        # code); the site holds it, so its id cannot be reused while the entry lives.
        key = (call.name, call.kind is _CAPABILITY, id(metadata) if metadata else 0,
               call.hint, call.names, has_source)
        site = self._sites.get(key)
        if site is None:
            site = self._site(call, has_source)
            if len(self._sites) >= self.MAX_SITES:
                self._sites.clear()
            self._sites[key] = site
        return site

    def context_at(self, site: CallSite, args: tuple[Any, ...]) -> CallContext:
        """The context of a call at `site` with these arguments, as the providers are now."""
        cached = self._available  # `available()`, its common case inline
        if cached is not None and self.clock() - cached[0] <= AVAILABILITY_TTL_S:
            available = cached[1]
        else:
            available = self.available()
        now = site.now
        if available is not now[0]:
            now = site.now = (available, self._hash(available, site.meta.digest(),
                                                    site.fingerprint), {})
        # one argument (the common case): its type is the key, no tuple to build
        types = type(args[0]) if len(args) == 1 else tuple(map(type, args))
        ctx = now[2].get(types)
        return ctx if ctx is not None else self._new_context(site, now, args, types)

    def _new_context(self, site: CallSite, now: tuple[Any, int, dict[Any, CallContext]],
                     args: tuple[Any, ...], types: Any) -> CallContext:
        """A context of `site` for arguments of these types, kept under their signature and,
        when the types alone make the signature, under the types."""
        contexts = now[2]
        signature = tuple([type_signature(a) for a in args])
        ctx = contexts.get(signature)
        if ctx is None:
            if len(contexts) >= site.MAX_CONTEXTS:
                contexts.clear()
            ctx = contexts[signature] = CallContext(
                symbol=site.symbol, arg_type_fingerprint=_signature_fingerprint(signature),
                runtime_context_hash=now[1], metadata=site.meta, hint=site.hint,
                sensitive=site.sensitive, has_source=site.has_source,
                is_capability=site.is_capability, context=site.context)
        if _SIGNED_BY_TYPE.issuperset(map(type, args)):
            contexts[types] = ctx
        return ctx

    def _site(self, call: RoutedCall, has_source: bool) -> CallSite:
        meta = metadata_from_rtfs(call.metadata, call.hint.extra if call.hint is not None else ())
        return CallSite(call.name, call.metadata, meta, call.hint,
                        self._sensitive(meta, call.name, call.names), self.call_context(meta),
                        has_source=has_source, is_capability=call.kind is CallKind.CAPABILITY)

    def _sensitive(self, meta: DelegationMetadata, symbol: str, names: Iterable[str]) -> bool:
        security = self.config.security
        return (meta.sensitive or security.is_sensitive(symbol)
                or any(security.is_sensitive(name) for name in names))

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
        context = self.call_context(meta)
        return CallContext(
            symbol=symbol, arg_type_fingerprint=arg_type_fingerprint(args),
            runtime_context_hash=self.runtime_hash(meta, context), metadata=meta, hint=hint,
            sensitive=self._sensitive(meta, symbol, names), has_source=has_source,
            is_capability=is_capability, context=context)
