"""`delegation.toml`: loading, validation and the frozen `DelegationConfig`.

The file has the seed's shape (`[delegation]`, `static_routes`, `remote_providers`,
`local_models`) plus `security` and `l4` sections. Target strings are resolved once, here,
into tagged targets; every error is a `ConfigError` naming the file, the dotted key path and
its line. Nothing here reads the environment: API keys are looked up by the name the config
gives, at the edge (`delegation.providers.resolve_secrets`).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from delegation.errors import ConfigError
from delegation.extensions import Extensions, discover
from delegation.routes import PatternSet, Route, RouteTable, compile_glob, is_glob
from delegation.schema import read_options
from delegation.targets import LOCAL_PURE, ExecTarget, resolve_target_name
from delegation.tomllines import KeyLines, TableReader

DEFAULT_CACHE_TTL_S = 3600.0
DEFAULT_L1_MAX_ENTRIES = 10_000
STATE_SUBDIR = "rtfs-delegation"
STORE_SCHEMES = ("file", "memory", "s3", "ipfs")

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_CAPABILITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]*")
_KEY_ID = re.compile(r"[0-9a-f]{8,128}")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")

DEFAULT_TOML = """\
[delegation]
default_target = "local-pure"
cache_ttl = 3600
enable_l4_cache = true

[delegation.static_routes]
"sentiment" = "local-sentiment-rules"
"summarize" = "local-summarizer"

[delegation.local_models.sentiment-rules]
kind = "sentiment-rules"

[delegation.local_models.summarizer]
kind = "extractive-summarizer"
"""
"""The built-in configuration: local models only, so it runs offline with nothing set up."""


class ProviderKind(StrEnum):
    """Kinds of remote provider."""

    OPENAI_CHAT = "openai-chat"


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
    base_url: str = ""
    model: str = ""
    api_key_env: str | None = None
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


@dataclass(frozen=True)
class SecurityConfig:
    """`[delegation.security]`: level, remote allow-list, sensitive function patterns."""

    level: SecurityLevel = SecurityLevel.STANDARD
    allowed_remote_providers: frozenset[str] = frozenset()
    sensitive: PatternSet = field(default_factory=PatternSet)

    def remote_allowed(self, provider_id: str) -> bool:
        """True if the security context may contact this remote provider."""
        return provider_id in self.allowed_remote_providers

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
    """A trusted or revoked key: a key id (hex) or a key file (absolute path)."""

    value: str
    path: Path | None = None


@dataclass(frozen=True)
class L4Config:
    """`[delegation.l4]`: where compiled code is published and whose signatures count."""

    store_uri: str
    store_path: Path | None = None
    signing_key: Path | None = None
    trusted_keys: tuple[KeyRef, ...] = ()
    revoked_keys: tuple[KeyRef, ...] = ()


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


# --- entry points -------------------------------------------------------------------------


def load_config(path: str | Path, *, extensions: Extensions | None = None,
                state_dir: str | Path | None = None,
                environ: Mapping[str, str] | None = None) -> DelegationConfig:
    """Read and validate a config file; relative paths in it are relative to its directory.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or fails validation.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text: {e.reason}", str(path)) from e
    except OSError as e:
        raise ConfigError(f"cannot read the file: {e.strerror or e}", str(path)) from e
    return parse_config(text, source=str(path), base_dir=path.resolve().parent,
                        extensions=extensions, state_dir=state_dir, environ=environ)


def parse_config(
    text: str,
    *,
    source: str = "<string>",
    base_dir: str | Path | None = None,
    extensions: Extensions | None = None,
    state_dir: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> DelegationConfig:
    """Validate config text; `base_dir` (default: the current directory) anchors paths.

    The state directory is, first found: `state_dir` (a `--state-dir` option), the file's
    `[delegation] state_dir` (relative to `base_dir`), `$XDG_STATE_HOME/rtfs-delegation` or
    `$HOME/.local/state/rtfs-delegation` read from `environ` when it is given, else
    `<base_dir>/.rtfs-state` (library use with no environment).

    `extensions` supplies the provider kinds and tables other packages registered (default:
    those installed, `delegation.extensions.discover()`).

    Raises:
        ConfigError: a TOML syntax error (with its line) or an invalid key or value.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _syntax_error(e, source, text) from e
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    ext = extensions if extensions is not None else discover()
    fallback = default_state_dir(environ) if environ is not None else base / ".rtfs-state"
    override = Path(state_dir).resolve() if state_dir is not None else None
    builder = _Builder(TableReader(source, KeyLines(text)), base.resolve(), ext,
                       override, fallback.resolve())
    return builder.build(data)


def default_state_dir(environ: Mapping[str, str]) -> Path:
    """`$XDG_STATE_HOME/rtfs-delegation`, else `$HOME/.local/state/rtfs-delegation`."""
    xdg = environ.get("XDG_STATE_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / STATE_SUBDIR
    home = environ.get("HOME") or str(Path.home())
    return Path(home) / ".local" / "state" / STATE_SUBDIR


def default_config(base_dir: str | Path | None = None, *,
                   extensions: Extensions | None = None,
                   state_dir: str | Path | None = None,
                   environ: Mapping[str, str] | None = None) -> DelegationConfig:
    """Return the built-in configuration: offline, local models only, local-pure default."""
    return parse_config(DEFAULT_TOML, source="<built-in default>", base_dir=base_dir,
                        extensions=extensions, state_dir=state_dir, environ=environ)


def _syntax_error(e: tomllib.TOMLDecodeError, source: str, text: str) -> ConfigError:
    message = str(e)
    line: int | None = None
    m = _TOML_POSITION.search(message)
    if m:
        line = int(m.group(1))
        message = message[: m.start()]
    elif message.endswith("(at end of document)"):
        line = text.count("\n") + 1
        message = message[: -len("(at end of document)")].rstrip()
    return ConfigError(f"TOML syntax error: {message}", source, None, line)


# --- building -----------------------------------------------------------------------------

_ROOT = ("delegation",)
_TOP_KEYS = ("delegation",)
_DELEGATION_KEYS = (
    "default_target",
    "cache_ttl",
    "enable_l4_cache",
    "policy_version",
    "l1_max_entries",
    "state_dir",
    "static_routes",
    "remote_providers",
    "local_models",
    "security",
    "l4",
)
_REMOTE_COMMON = ("kind", "api_key_env", "timeout_s", "cost_per_call", "capabilities",
                  "health_ttl_s")
_REMOTE_KEYS = _REMOTE_COMMON + ("base_url", "model")
MAX_TIMEOUT_S = 86_400.0
_LOCAL_COMMON = ("kind", "cost_per_call", "capabilities")
_LOCAL_KEYS: Mapping[LocalModelKind, tuple[str, ...]] = {
    LocalModelKind.SENTIMENT_RULES: _LOCAL_COMMON + ("rules",),
    LocalModelKind.EXTRACTIVE_SUMMARIZER: _LOCAL_COMMON + ("max_sentences",),
    LocalModelKind.COMMAND: _LOCAL_COMMON + ("command", "timeout_s"),
}
_SECURITY_KEYS = ("level", "allowed_remote_providers", "sensitive")
_L4_KEYS = ("store", "signing_key", "trusted_keys", "revoked_keys")
_ROUTE_KEYS = ("target", "fallback")


class _Builder:
    def __init__(self, reader: TableReader, base_dir: Path, extensions: Extensions,
                 state_override: Path | None, state_fallback: Path) -> None:
        self.r = reader
        self.base_dir = base_dir
        self.ext = extensions
        self.state_override, self.state_fallback = state_override, state_fallback

    def build(self, data: dict[str, object]) -> DelegationConfig:
        self.r.check_keys(data, (), _TOP_KEYS)
        section = self.r.table(data.get("delegation", {}), _ROOT)
        self.r.check_keys(section, _ROOT, _DELEGATION_KEYS + tuple(self.ext.sections))
        remotes = self._remote_providers(section)
        models = self._local_models(section)
        self.remote_ids, self.local_ids = tuple(remotes), tuple(models)
        self.state_dir = self.state_override or self._path(section, _ROOT, "state_dir") or (
            self.state_fallback)
        return DelegationConfig(
            source=self.r.source,
            base_dir=self.base_dir,
            l4=self._l4(section),
            default_target=self._default_target(section),
            cache_ttl_s=self.r.number(section, _ROOT, "cache_ttl", DEFAULT_CACHE_TTL_S),
            enable_l4_cache=self.r.boolean(section, _ROOT, "enable_l4_cache", True),
            policy_version=self.r.string(section, _ROOT, "policy_version", "1"),
            l1_max_entries=self.r.integer(
                section, _ROOT, "l1_max_entries", DEFAULT_L1_MAX_ENTRIES, minimum=1
            ),
            routes=self._routes(section),
            remote_providers=MappingProxyType(remotes),
            local_models=MappingProxyType(models),
            security=self._security(section),
            sections=MappingProxyType(self._sections(section)),
            state_dir=self.state_dir,
        )

    def _sections(self, section: dict[str, object]) -> dict[str, Mapping[str, Any]]:
        out = {}
        for name, spec in self.ext.sections.items():
            path = _ROOT + (name,)
            out[name] = read_options(self.r, self.r.table(section.get(name, {}), path), path,
                                     spec.options)
        return out

    def _target(self, value: object, path: tuple[str, ...]) -> ExecTarget:
        name = self.r.expect_str(value, path)
        try:
            return resolve_target_name(name, self.remote_ids, self.local_ids)
        except ValueError as e:
            raise self.r.error(path, str(e)) from None

    def _default_target(self, section: dict[str, object]) -> ExecTarget:
        if "default_target" not in section:
            return LOCAL_PURE
        return self._target(section["default_target"], _ROOT + ("default_target",))

    # --- providers and models -------------------------------------------------------------

    def _entries(self, section: dict[str, object], key: str) -> list[tuple[str, dict, tuple]]:
        path = _ROOT + (key,)
        entries = []
        for entry_id, value in self.r.table(section.get(key, {}), path).items():
            entry_path = path + (entry_id,)
            if not _ID.fullmatch(entry_id):
                raise self.r.error(entry_path, "an id is letters, digits, '_', '.', '-'")
            entries.append((entry_id, self.r.table(value, entry_path), entry_path))
        return entries

    def _remote_providers(self, section: dict[str, object]) -> dict[str, RemoteProviderConfig]:
        out = {}
        for pid, table, path in self._entries(section, "remote_providers"):
            kind = self._provider_kind(table, path)
            common = dict(
                id=pid,
                kind=kind,
                api_key_env=self.r.string(table, path, "api_key_env", None),
                timeout_s=self.r.number(table, path, "timeout_s", 10.0, positive=True,
                                        maximum=MAX_TIMEOUT_S),
                cost_per_call=self.r.number(table, path, "cost_per_call", 0.0),
                capabilities=self._capabilities(table, path, ()),
                health_ttl_s=self.r.number(table, path, "health_ttl_s", 30.0,
                                           maximum=MAX_TIMEOUT_S),
            )
            spec = self.ext.provider_kinds.get(kind)
            if spec is None:  # a built-in kind
                self.r.check_keys(table, path, _REMOTE_KEYS)
                out[pid] = RemoteProviderConfig(
                    base_url=self._url(table, path),
                    model=self.r.string(table, path, "model"),
                    **common,  # type: ignore[arg-type]
                )
                continue
            options = {k: v for k, v in table.items() if k not in _REMOTE_COMMON}
            out[pid] = RemoteProviderConfig(
                options=read_options(self.r, options, path, spec.options),
                **common,  # type: ignore[arg-type]
            )
        return out

    def _provider_kind(self, table: dict[str, object], path: tuple[str, ...]) -> str:
        kind = self.r.string(table, path, "kind")
        known = [str(k) for k in ProviderKind] + sorted(self.ext.provider_kinds)
        if kind not in known:
            raise self.r.error(path + ("kind",), f"unknown kind {kind!r} (known: "
                               + ", ".join(repr(k) for k in known) + ")")
        return kind

    def _url(self, table: dict[str, object], path: tuple[str, ...]) -> str:
        url = self.r.string(table, path, "base_url")
        if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", url):
            raise self.r.error(path + ("base_url",), f"{url!r} is not an http(s) URL")
        return url.rstrip("/")

    def _capabilities(
        self, table: dict[str, object], path: tuple[str, ...], default: tuple[str, ...]
    ) -> tuple[str, ...]:
        if "capabilities" not in table:
            return default
        caps = self.r.string_list(table, path, "capabilities")
        for i, cap in enumerate(caps):
            if not _CAPABILITY.fullmatch(cap):
                raise self.r.error(path + ("capabilities", i), f"bad capability id {cap!r}")
        return caps

    def _local_models(self, section: dict[str, object]) -> dict[str, LocalModelConfig]:
        out = {}
        for mid, table, path in self._entries(section, "local_models"):
            kind = self.r.choice(table, path, "kind", LocalModelKind)
            self.r.check_keys(table, path, _LOCAL_KEYS[kind])
            out[mid] = LocalModelConfig(
                id=mid,
                kind=kind,
                cost_per_call=self.r.number(table, path, "cost_per_call", 0.0),
                capabilities=self._capabilities(table, path, DEFAULT_CAPABILITIES.get(kind, ())),
                rules=self._path(table, path, "rules"),
                max_sentences=self.r.integer(table, path, "max_sentences", 3, minimum=1),
                timeout_s=self.r.number(table, path, "timeout_s", 30.0, positive=True),
                **self._command(table, path, kind),
            )
        return out

    def _command(
        self, table: dict[str, object], path: tuple[str, ...], kind: LocalModelKind
    ) -> dict[str, object]:
        if kind is not LocalModelKind.COMMAND:
            return {}
        value = table.get("command")
        if value is None:
            raise self.r.error(path, "missing required key 'command'")
        argv = (
            (self.r.expect_str(value, path + ("command",)),)
            if isinstance(value, str)
            else self.r.string_list(table, path, "command")
        )
        if not argv or not argv[0]:
            raise self.r.error(path + ("command",), "must name an executable")
        first = argv[0]
        resolved = str(self.base_dir / first) if "/" in first else first
        return {"command": (resolved,) + argv[1:], "command_display": first}

    def _path(self, table: dict[str, object], path: tuple[str, ...], key: str) -> Path | None:
        value = self.r.string(table, path, key, None)
        if value is None:
            return None
        if not value:
            raise self.r.error(path + (key,), "must not be empty")
        return self.base_dir / value

    # --- routes, security, l4 ---------------------------------------------------------------

    def _routes(self, section: dict[str, object]) -> RouteTable:
        path = _ROOT + ("static_routes",)
        routes = []
        for pattern, value in self.r.table(section.get("static_routes", {}), path).items():
            routes.append(self._route(pattern, value, path + (pattern,)))
        return RouteTable(routes)

    def _route(self, pattern: str, value: object, path: tuple[str, ...]) -> Route:
        self._check_pattern(pattern, path)
        line = self.r.lines.line_of(path)
        if not isinstance(value, dict):
            return Route(pattern, self._target(value, path), None, line)
        self.r.check_keys(value, path, _ROUTE_KEYS)
        if "target" not in value:
            raise self.r.error(path, "a route table needs a 'target'")
        target = self._target(value["target"], path + ("target",))
        fallback = None
        if "fallback" in value:
            fallback = self._target(value["fallback"], path + ("fallback",))
            if fallback == target:
                raise self.r.error(path + ("fallback",), "the fallback is the target itself")
        return Route(pattern, target, fallback, line)

    def _check_pattern(self, pattern: str, path: tuple[str | int, ...]) -> None:
        try:
            compile_glob(pattern) if is_glob(pattern) else None
        except ValueError as e:
            raise self.r.error(path, str(e)) from None
        if not pattern or pattern != pattern.strip():
            raise self.r.error(path, "a pattern must be non-empty, without outer spaces")

    def _security(self, section: dict[str, object]) -> SecurityConfig:
        path = _ROOT + ("security",)
        table = self.r.table(section.get("security", {}), path)
        self.r.check_keys(table, path, _SECURITY_KEYS)
        allowed = self.r.string_list(table, path, "allowed_remote_providers", self.remote_ids)
        for i, pid in enumerate(allowed):
            if pid not in self.remote_ids:
                raise self.r.error(
                    path + ("allowed_remote_providers", i),
                    f"no remote provider {pid!r} is declared",
                )
        sensitive = self.r.string_list(table, path, "sensitive", ())
        for i, pattern in enumerate(sensitive):
            self._check_pattern(pattern, path + ("sensitive", i))
        return SecurityConfig(
            level=self.r.choice(table, path, "level", SecurityLevel, SecurityLevel.STANDARD),
            allowed_remote_providers=frozenset(allowed),
            sensitive=PatternSet(sensitive),
        )

    def _l4(self, section: dict[str, object]) -> L4Config:
        path = _ROOT + ("l4",)
        table = self.r.table(section.get("l4", {}), path)
        self.r.check_keys(table, path, _L4_KEYS)
        default_store = (self.state_dir / "l4").as_uri()
        uri, store_path = self._store(
            self.r.string(table, path, "store", default_store), path + ("store",)
        )
        return L4Config(
            store_uri=uri,
            store_path=store_path,
            signing_key=self._path(table, path, "signing_key"),
            trusted_keys=self._keys(table, path, "trusted_keys"),
            revoked_keys=self._keys(table, path, "revoked_keys"),
        )

    def _store(self, uri: str, path: tuple[str, ...]) -> tuple[str, Path | None]:
        scheme, sep, rest = uri.partition("://")
        if not sep or scheme not in STORE_SCHEMES:
            raise self.r.error(
                path,
                f"{uri!r}: a store URI starts with one of "
                + ", ".join(f"{s}://" for s in STORE_SCHEMES),
            )
        if scheme != "file":
            return uri, None
        if not rest:
            raise self.r.error(path, "a file:// store needs a directory")
        directory = (self.base_dir / rest).resolve()
        return directory.as_uri(), directory

    def _keys(self, table: dict[str, object], path: tuple[str, ...], key: str) -> tuple:
        refs = []
        for value in self.r.string_list(table, path, key, ()):
            if _KEY_ID.fullmatch(value):
                refs.append(KeyRef(value))
            else:
                refs.append(KeyRef(value, self.base_dir / value))
        return tuple(refs)
