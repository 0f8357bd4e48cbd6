"""Building a `DelegationConfig` from parsed TOML: every key checked, every value typed and
ranged, every target resolved; errors name the file, the dotted key path and the line."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from delegation.configtypes import (
    DEFAULT_CAPABILITIES,
    DEFAULT_REMOTE_CAPABILITIES,
    DelegationConfig,
    KeyRef,
    L4Config,
    LocalModelConfig,
    LocalModelKind,
    ProviderKind,
    RemoteProviderConfig,
    SecurityConfig,
    SecurityLevel,
)
from delegation.errors import ConfigError
from delegation.extensions import Extensions
from delegation.l2.config import l2_config_from_table
from delegation.l3.config import l3_config_from_table
from delegation.l3.context import context_from_table
from delegation.routes import PatternSet, Route, RouteTable, compile_glob, is_glob
from delegation.schema import read_options
from delegation.targets import LOCAL_PURE, ExecTarget, resolve_target_name
from delegation.tomllines import KeyPath, TableReader
from storage import KeyRing, SigningKeyError, StoreURIError, validate_uri
from storage.registry import schemes as store_schemes
from storage.signing import load_key_list, load_private_key


def _D(cls: type, name: str) -> Any:
    """The default of a config dataclass field: the one place defaults are written."""
    for f in fields(cls):
        if f.name == name:
            if f.default is not MISSING:
                return f.default
            if f.default_factory is not MISSING:
                return f.default_factory()
    raise AttributeError(f"{cls.__name__} has no field {name!r} with a default")

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_CAPABILITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]*")
_KEY_ID = re.compile(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{64}")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def syntax_error(e: tomllib.TOMLDecodeError, source: str, text: str) -> ConfigError:
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
    "l2",
    "l3",
    "context",
)
_REMOTE_COMMON = ("kind", "api_key_env", "timeout_s", "cost_per_call", "capabilities",
                  "health_ttl_s")
_REMOTE_KEYS = _REMOTE_COMMON + ("base_url", "model")
# remote-rtfs names its token variable `auth_token_env` (kept as `api_key_env`: a secret read
# at the edge and withheld from local model runners like any API key)
_REMOTE_RTFS_KEYS = tuple(k for k in _REMOTE_COMMON if k != "api_key_env") + (
    "endpoint", "auth_token_env")
MAX_TIMEOUT_S = 86_400.0  # a day: anything longer is a typo, not a timeout
MAX_TTL_S = 366 * 86_400.0
MAX_COST = 1e9
_LOCAL_COMMON = ("kind", "cost_per_call", "capabilities")
_LOCAL_KEYS: Mapping[LocalModelKind, tuple[str, ...]] = {
    LocalModelKind.SENTIMENT_RULES: _LOCAL_COMMON + ("rules",),
    LocalModelKind.EXTRACTIVE_SUMMARIZER: _LOCAL_COMMON + ("max_sentences",),
    LocalModelKind.COMMAND: _LOCAL_COMMON + ("command", "timeout_s", "max_output_bytes"),
}
_SECURITY_KEYS = ("level", "allowed_remote_providers", "sensitive", "allowed_peers")
_L4_KEYS = ("store", "signing_key", "trusted_keys", "revoked_keys", "connect_timeout_s",
            "read_timeout_s", "down_for_s")
_ROUTE_KEYS = ("target", "fallback")


class Builder:
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
            cache_ttl_s=self.r.number(section, _ROOT, "cache_ttl",
                                      _D(DelegationConfig, "cache_ttl_s"), maximum=MAX_TTL_S),
            enable_l4_cache=self.r.boolean(section, _ROOT, "enable_l4_cache",
                                           _D(DelegationConfig, "enable_l4_cache")),
            policy_version=self.r.string(section, _ROOT, "policy_version",
                                         _D(DelegationConfig, "policy_version")),
            l1_max_entries=self.r.integer(
                section, _ROOT, "l1_max_entries", _D(DelegationConfig, "l1_max_entries"), minimum=1,
                maximum=100_000_000),
            routes=self._routes(section),
            remote_providers=MappingProxyType(remotes),
            local_models=MappingProxyType(models),
            security=self._security(section),
            sections=MappingProxyType(self._sections(section)),
            state_dir=self.state_dir,
            l2=l2_config_from_table(self.r, section.get("l2", {}), _ROOT + ("l2",)),
            l3=l3_config_from_table(self.r, section.get("l3", {}), _ROOT + ("l3",)),
            context=context_from_table(self.r, section.get("context", {}),
                                       _ROOT + ("context",)),
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
            common = {
                "id": pid,
                "kind": kind,
                "api_key_env": self.r.string(table, path, "api_key_env", None),
                "timeout_s": self.r.number(table, path, "timeout_s",
                                        _D(RemoteProviderConfig, "timeout_s"),
                                        positive=True, maximum=MAX_TIMEOUT_S),
                "cost_per_call": self.r.number(table, path, "cost_per_call",
                                            _D(RemoteProviderConfig, "cost_per_call"),
                                            maximum=MAX_COST),
                "capabilities": self._capabilities(table, path,
                                                DEFAULT_REMOTE_CAPABILITIES.get(kind, ())),
                "health_ttl_s": self.r.number(table, path, "health_ttl_s",
                                           _D(RemoteProviderConfig, "health_ttl_s"),
                                           maximum=MAX_TIMEOUT_S),
            }
            if kind == ProviderKind.REMOTE_RTFS:
                out[pid] = self._remote_rtfs(table, path, common)
                continue
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

    def _remote_rtfs(self, table: dict[str, object], path: tuple[str, ...],
                     common: dict[str, Any]) -> RemoteProviderConfig:
        """`kind = "remote-rtfs"`: `endpoint` (http(s) URL of `delegation serve --http-port`)
        and `auth_token_env` (the variable holding its bearer token)."""
        self.r.check_keys(table, path, _REMOTE_RTFS_KEYS)
        common["api_key_env"] = self.r.string(table, path, "auth_token_env", None)
        return RemoteProviderConfig(base_url=self._url(table, path, "endpoint"), **common)

    def _provider_kind(self, table: dict[str, object], path: tuple[str, ...]) -> str:
        kind = self.r.string(table, path, "kind")
        known = [str(k) for k in ProviderKind] + sorted(self.ext.provider_kinds)
        if kind not in known:
            raise self.r.error(path + ("kind",), f"unknown kind {kind!r} (known: "
                               + ", ".join(repr(k) for k in known) + ")")
        return kind

    def _url(self, table: dict[str, object], path: tuple[str, ...], key: str = "base_url"
             ) -> str:
        url = self.r.string(table, path, key)
        if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", url):
            raise self.r.error(path + (key,), f"{url!r} is not an http(s) URL")
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
                cost_per_call=self.r.number(table, path, "cost_per_call",
                                            _D(LocalModelConfig, "cost_per_call"),
                                            maximum=MAX_COST),
                capabilities=self._capabilities(table, path, DEFAULT_CAPABILITIES.get(kind, ())),
                rules=self._path(table, path, "rules"),
                max_sentences=self.r.integer(table, path, "max_sentences",
                                             _D(LocalModelConfig, "max_sentences"), minimum=1,
                                             maximum=10_000),
                timeout_s=self.r.number(table, path, "timeout_s",
                                        _D(LocalModelConfig, "timeout_s"), positive=True,
                                        maximum=MAX_TIMEOUT_S),
                max_output_bytes=self.r.integer(table, path, "max_output_bytes",
                                                _D(LocalModelConfig, "max_output_bytes"),
                                                minimum=1, maximum=1 << 34),
                **self._command(table, path, kind),
            )
        return out

    def _command(
        self, table: dict[str, object], path: tuple[str, ...], kind: LocalModelKind
    ) -> dict[str, Any]:
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
        peers = self.r.string_list(table, path, "allowed_peers", ())
        for i, pattern in enumerate(peers):
            self._check_pattern(pattern, path + ("allowed_peers", i))
        return SecurityConfig(
            level=self.r.choice(table, path, "level", SecurityLevel,
                                _D(SecurityConfig, "level")),
            allowed_remote_providers=frozenset(allowed),
            sensitive=PatternSet(sensitive),
            allowed_peers=PatternSet(peers),
        )

    def _l4(self, section: dict[str, object]) -> L4Config:
        path = _ROOT + ("l4",)
        table = self.r.table(section.get("l4", {}), path)
        self.r.check_keys(table, path, _L4_KEYS)
        default_store = (self.state_dir / "l4").as_uri()
        uri, store_path = self._store(
            self.r.string(table, path, "store", default_store), path + ("store",)
        )
        l4 = L4Config(
            store_uri=uri,
            store_path=store_path,
            signing_key=self._path(table, path, "signing_key"),
            trusted_keys=self._keys(table, path, "trusted_keys"),
            revoked_keys=self._keys(table, path, "revoked_keys"),
            connect_timeout_s=self.r.number(table, path, "connect_timeout_s",
                                            _D(L4Config, "connect_timeout_s"), positive=True,
                                            maximum=MAX_TIMEOUT_S),
            read_timeout_s=self.r.number(table, path, "read_timeout_s",
                                         _D(L4Config, "read_timeout_s"), positive=True,
                                         maximum=MAX_TIMEOUT_S),
            down_for_s=self.r.number(table, path, "down_for_s", _D(L4Config, "down_for_s"),
                                     maximum=MAX_TTL_S),
        )
        self._check_keys(l4, path)
        return l4

    def _store(self, uri: str, path: tuple[str, ...]) -> tuple[str, Path | None]:
        scheme, sep, rest = uri.partition("://")
        known = store_schemes()  # the storage registry: a registered backend is accepted
        if not sep or scheme not in known:
            raise self.r.error(
                path,
                f"{uri!r}: a store URI starts with one of "
                + ", ".join(f"{s}://" for s in known),
            )
        if scheme != "file":
            try:
                validate_uri(uri)
            except StoreURIError as e:
                raise self.r.error(path, f"{uri!r}: {e.reason}") from None
            return uri, None
        if not rest:
            raise self.r.error(path, "a file:// store needs a directory")
        directory = (self.base_dir / rest).resolve()
        return directory.as_uri(), directory

    def _keys(self, table: dict[str, object], path: tuple[str, ...], key: str) -> tuple:
        """Key references, each read and checked now: a key (64 hex; for revoked keys also a
        32-hex key id) or a key list file (one per line)."""
        refs = []
        for i, value in enumerate(self.r.string_list(table, path, key, ())):
            where: KeyPath = (*path, key, i)
            if _KEY_ID.fullmatch(value):
                refs.append(KeyRef(value, None, (value,)))
                continue
            file = self.base_dir / value
            try:
                keys = tuple(load_key_list(file))
            except SigningKeyError as e:
                raise self.r.error(where, str(e)) from None
            except ValueError as e:  # not text (UnicodeDecodeError)
                raise self.r.error(where, f"{value}: not a key list file ({e})") from None
            refs.append(KeyRef(value, file, keys))
        return tuple(refs)

    def _check_keys(self, l4: L4Config, path: tuple[str, ...]) -> None:
        """The keys must make a key ring, and a signing key file must hold a key."""
        trusted = [k for ref in l4.trusted_keys for k in ref.keys]
        revoked = [k for ref in l4.revoked_keys for k in ref.keys]
        for name, values in (("trusted_keys", trusted), ("revoked_keys", revoked)):
            try:
                KeyRing(values if name == "trusted_keys" else (),
                        values if name == "revoked_keys" else ())
            except (SigningKeyError, ValueError) as e:
                raise self.r.error(path + (name,), str(e)) from None
        if l4.signing_key is not None:
            try:
                load_private_key(l4.signing_key)
            except SigningKeyError as e:
                raise self.r.error(path + ("signing_key",), str(e)) from None
