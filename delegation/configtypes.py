"""The frozen configuration types: what a validated `delegation.toml` is.

Built by `delegation.config` (`load_config`, `parse_config`, `default_config`); nothing here
reads files or the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from delegation.l2.config import L2Config
from delegation.l3.config import L3Config
from delegation.l3.context import EMPTY_CONTEXT, Context
from delegation.routes import PatternSet, Route, RouteTable
from delegation.targets import LOCAL_PURE, ExecTarget, peer_name

DEFAULT_CACHE_TTL_S = 3600.0
DEFAULT_L1_MAX_ENTRIES = 10_000
STATE_SUBDIR = "rtfs-delegation"


class ProviderKind(StrEnum):
    """Kinds of remote provider."""

    OPENAI_CHAT = "openai-chat"
    REMOTE_RTFS = "remote-rtfs"
    """A plan step run by another node's HTTP endpoint (`POST {endpoint}/execute`)."""


EXACT_INPUT_KINDS: frozenset[str] = frozenset({ProviderKind.REMOTE_RTFS})
"""Provider kinds whose answer depends on every character of the input (a program, not a
prompt): L2 never serves or stores their answers."""

DEFAULT_REMOTE_CAPABILITIES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {ProviderKind.REMOTE_RTFS: ("remote-rtfs.execute",)}
)
"""Capabilities a remote provider offers when its table has no `capabilities` key."""


class LocalModelKind(StrEnum):
    """Kinds of local model."""

    SENTIMENT_RULES = "sentiment-rules"
    EXTRACTIVE_SUMMARIZER = "extractive-summarizer"
    COMMAND = "command"


class SecurityLevel(StrEnum):
    """How much may leave this node (also part of the runtime context hash).

    At every level a sensitive call never goes remote, a sensitive function's code is never
    published off this node, and only providers in `allowed_remote_providers` are contacted
    (absent: every declared remote provider).

    STANDARD: any decision layer may pick an allowed remote provider.
    HIGH: a call goes remote only to a provider its static route or `^:delegation` hint names
        (metadata, capabilities, learned scores, cached plans and federation never send a call
        remote; they fall back to a local target or the call is refused).
    MAXIMUM: a call goes remote only to a provider its static route names (a hint written in
        a plan does not count: the operator's config decides), and no compiled code is
        published off this node.
    """

    STANDARD = "standard"
    HIGH = "high"
    MAXIMUM = "maximum"


DEFAULT_CAPABILITIES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        LocalModelKind.SENTIMENT_RULES: ("sentiment", "tone"),
        LocalModelKind.EXTRACTIVE_SUMMARIZER: ("summarize",),
    }
)
"""Capabilities a local model offers when its table has no `capabilities` key."""


@dataclass(frozen=True)
class RemoteProviderConfig:
    """One `[delegation.remote_providers.<id>]` table."""

    id: str
    kind: str  # a `ProviderKind` or a kind an extension registered
    base_url: str = ""  # remote-rtfs: its `endpoint`
    model: str = ""
    api_key_env: str | None = None  # remote-rtfs: its `auth_token_env` (the bearer token)
    timeout_s: float = 10.0
    cost_per_call: float = 0.0
    capabilities: tuple[str, ...] = ()
    health_ttl_s: float = 30.0
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """The keys of an extension's kind (see `delegation.extensions.ProviderKindSpec`)."""


@dataclass(frozen=True)
class LocalModelConfig:
    """One `[delegation.local_models.<id>]` table; paths are absolute.

    `command` is the runner's argv (first item resolved against the config directory when
    it contains a `/`); `command_display` is that item as written, for messages.
    """

    id: str
    kind: LocalModelKind
    cost_per_call: float = 0.0
    capabilities: tuple[str, ...] = ()
    rules: Path | None = None
    max_sentences: int = 3
    command: tuple[str, ...] = ()
    command_display: str = ""
    timeout_s: float = 30.0
    max_output_bytes: int = 16 << 20


@dataclass(frozen=True)
class SecurityConfig:
    """`[delegation.security]`: level, remote allow-lists, sensitive function patterns.

    `allowed_peers` names (or globs) the fleet's arbiters that calls may be federated to when
    they are discovered from the directory (their target is `RemoteModel("peer:<name>")`);
    empty, the default: none, only peers declared as `rtfs-peer` providers.
    """

    level: SecurityLevel = SecurityLevel.STANDARD
    allowed_remote_providers: frozenset[str] = frozenset()
    sensitive: PatternSet = field(default_factory=PatternSet)
    allowed_peers: PatternSet = field(default_factory=PatternSet)

    def remote_allowed(self, provider_id: str) -> bool:
        """True if the security context may contact this remote provider (a declared one in
        the allow-list, or a discovered peer arbiter in `allowed_peers`)."""
        if provider_id in self.allowed_remote_providers:
            return True
        arbiter = peer_name(provider_id)
        return arbiter is not None and arbiter in self.allowed_peers

    def remote_needs_route(self, named_by_route: bool, named_by_hint: bool) -> str | None:
        """Why this level refuses a remote target decided this way, or None if it allows it."""
        if self.level is SecurityLevel.MAXIMUM and not named_by_route:
            return "security level maximum: only a static route may send a call remote"
        if self.level is SecurityLevel.HIGH and not (named_by_route or named_by_hint):
            return "security level high: only a static route or hint may send a call remote"
        return None

    def is_sensitive(self, symbol: str) -> bool:
        """True if policy marks calls to `symbol` sensitive (never remote)."""
        return symbol in self.sensitive


@dataclass(frozen=True)
class KeyRef:
    """A trusted or revoked key as written: a key (hex) or a key list file (absolute path);
    `keys` holds the keys it stands for, read and checked when the config was loaded."""

    value: str
    path: Path | None = None
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class L4Config:
    """`[delegation.l4]`: where compiled code is published and whose signatures count."""

    store_uri: str
    store_path: Path | None = None
    signing_key: Path | None = None
    trusted_keys: tuple[KeyRef, ...] = ()
    revoked_keys: tuple[KeyRef, ...] = ()
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 5.0
    down_for_s: float | None = None
    """How long a store found down is skipped without asking it again; None (the default):
    for the rest of the runtime's life (a run). Long-lived processes set a period."""


@dataclass(frozen=True)
class DelegationConfig:
    """A validated `delegation.toml`. Build with `load_config`, `parse_config` or
    `default_config`; every target in it is already resolved against the declared ids."""

    source: str
    base_dir: Path
    l4: L4Config
    default_target: ExecTarget = LOCAL_PURE
    cache_ttl_s: float = DEFAULT_CACHE_TTL_S
    enable_l4_cache: bool = True
    policy_version: str = "1"
    l1_max_entries: int = DEFAULT_L1_MAX_ENTRIES
    routes: RouteTable = field(default_factory=RouteTable)
    remote_providers: Mapping[str, RemoteProviderConfig] = field(
        default_factory=lambda: MappingProxyType({})
    )
    local_models: Mapping[str, LocalModelConfig] = field(
        default_factory=lambda: MappingProxyType({})
    )
    security: SecurityConfig = field(default_factory=SecurityConfig)
    sections: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """`[delegation.<name>]` tables that extensions registered, validated, defaults filled in."""

    def route_for(self, symbol: str) -> Route | None:
        """Return the static route for `symbol` (exact name first, then most specific glob)."""
        return self.routes.match(symbol)

    state_dir: Path = field(default_factory=lambda: Path(".rtfs-state").resolve())
    """Where local state lives: L1 plans, outcomes, generated keys, the default L4 store."""

    l2: L2Config = field(default_factory=L2Config)
    """`[delegation.l2]`: the semantic result cache."""

    l3: L3Config = field(default_factory=L3Config)
    """`[delegation.l3]`: the contextual cache."""

    context: Context = EMPTY_CONTEXT
    """`[delegation.context]`: the run's context (a call's `^{:context {...}}` adds to it)."""
