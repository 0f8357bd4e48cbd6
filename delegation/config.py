"""`delegation.toml`: loading, validation and the frozen `DelegationConfig`.

The file has the seed's shape (`[delegation]`, `static_routes`, `remote_providers`,
`local_models`) plus `security` and `l4` sections. Target strings are resolved once, here,
into tagged targets; every error is a `ConfigError` naming the file, the dotted key path and
its line. Nothing here reads the environment: API keys are looked up by the name the config
gives, at the edge (`delegation.providers.resolve_secrets`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path

from delegation.configbuild import Builder, syntax_error
from delegation.configtypes import (
    DEFAULT_CACHE_TTL_S,
    DEFAULT_CAPABILITIES,
    DEFAULT_L1_MAX_ENTRIES,
    STATE_SUBDIR,
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
from delegation.extensions import Extensions, discover
from delegation.tomllines import KeyLines, TableReader

__all__ = [
    "DEFAULT_CACHE_TTL_S",
    "DEFAULT_CAPABILITIES",
    "DEFAULT_L1_MAX_ENTRIES",
    "DEFAULT_TOML",
    "DelegationConfig",
    "KeyRef",
    "L4Config",
    "LocalModelConfig",
    "LocalModelKind",
    "ProviderKind",
    "RemoteProviderConfig",
    "SecurityConfig",
    "SecurityLevel",
    "default_config",
    "default_state_dir",
    "load_config",
    "parse_config",
]

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
        raise syntax_error(e, source, text) from e
    except RecursionError:
        raise ConfigError("TOML nested too deeply to read", source) from None
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    ext = extensions if extensions is not None else discover()
    fallback = default_state_dir(environ) if environ is not None else base / ".rtfs-state"
    override = Path(state_dir).resolve() if state_dir is not None else None
    try:
        builder = Builder(TableReader(source, KeyLines(text)), base.resolve(), ext,
                          override, fallback.resolve())
        return builder.build(data)
    except RecursionError:
        raise ConfigError("TOML nested too deeply to check", source) from None


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


