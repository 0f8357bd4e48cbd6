"""delegation.toml: the example file, the built-in default, and errors that name file,
key path and line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from delegation.config import (
    DEFAULT_TOML,
    KeyRef,
    LocalModelKind,
    ProviderKind,
    SecurityLevel,
    default_config,
    load_config,
    parse_config,
)
from delegation.errors import ConfigError
from delegation.targets import LOCAL_PURE, LocalModel, RemoteModel
from storage.signing import public_key_hex, save_private_key

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "delegation.toml"

PROVIDER = """
[delegation.remote_providers.openai]
kind = "openai-chat"
base_url = "https://api.openai.com/v1"
model = "gpt-4o-mini"
api_key_env = "OPENAI_API_KEY"
"""
MODELS = """
[delegation.local_models.sentiment-rules]
kind = "sentiment-rules"
[delegation.local_models.summarizer]
kind = "extractive-summarizer"
"""


def test_example_config_mirrors_the_seed() -> None:
    config = load_config(EXAMPLE)
    assert config.source == str(EXAMPLE)
    assert config.default_target == LOCAL_PURE
    assert config.cache_ttl_s == 3600.0 and config.enable_l4_cache
    route = config.route_for("sentiment")
    assert route is not None and route.target == LocalModel("sentiment-rules")
    summarize = config.route_for("summarize")
    assert summarize is not None
    assert (summarize.target, summarize.fallback) == (
        RemoteModel("openai"),
        LocalModel("summarizer"),
    )
    assert config.route_for("generate-code").target == LocalModel("codegen")  # type: ignore[union-attr]
    assert config.route_for("translate").target == RemoteModel("translator")  # type: ignore[union-attr]
    assert config.route_for("translate").fallback is None  # type: ignore[union-attr]
    assert config.route_for("ai-anything").target == RemoteModel("openai")  # type: ignore[union-attr]
    assert config.route_for("+").target == LOCAL_PURE  # type: ignore[union-attr]
    assert config.route_for("generate-code").fallback == RemoteModel("openai")  # type: ignore[union-attr]
    assert config.security.is_sensitive("generate-code")
    assert config.security.is_sensitive("private-notes")
    assert not config.security.is_sensitive("summarize")


def test_example_paths_are_relative_to_the_config_directory() -> None:
    config = load_config(EXAMPLE)
    examples = EXAMPLE.parent
    assert config.local_models["sentiment-rules"].rules == examples / "models" / "sentiment.rules"
    codegen = config.local_models["codegen"]
    assert codegen.command == (str(examples / "models" / "codegen"),)
    assert codegen.command_display == "models/codegen"
    # no environment given (library use): state beside the file; the store defaults into it
    assert config.state_dir == examples / ".rtfs-state"
    assert config.l4.store_path == examples / ".rtfs-state" / "l4"
    assert config.l4.store_uri == (examples / ".rtfs-state" / "l4").as_uri()


def test_state_dir_precedence(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}
    assert load_config(EXAMPLE, environ=env).state_dir == tmp_path / "xdg" / "rtfs-delegation"
    no_xdg = {"HOME": str(tmp_path / "home")}
    assert load_config(EXAMPLE, environ=no_xdg).state_dir == (
        tmp_path / "home" / ".local" / "state" / "rtfs-delegation")
    in_file = parse_config('[delegation]\nstate_dir = "st"\n', base_dir=tmp_path, environ=env)
    assert in_file.state_dir == tmp_path / "st"
    assert in_file.l4.store_path == tmp_path / "st" / "l4"
    flag = parse_config('[delegation]\nstate_dir = "st"\n', base_dir=tmp_path, environ=env,
                        state_dir=tmp_path / "flag")
    assert flag.state_dir == tmp_path / "flag"


def test_example_providers_and_security() -> None:
    config = load_config(EXAMPLE)
    openai = config.remote_providers["openai"]
    assert openai.kind == ProviderKind.OPENAI_CHAT
    assert (openai.base_url, openai.model, openai.api_key_env) == (
        "https://api.openai.com/v1",
        "gpt-4o-mini",
        "OPENAI_API_KEY",
    )
    assert (openai.timeout_s, openai.cost_per_call) == (10.0, 0.002)
    assert config.security.level is SecurityLevel.STANDARD
    assert config.security.remote_allowed("openai")
    assert not config.security.remote_allowed("elsewhere")


def test_default_config_runs_offline_with_local_models() -> None:
    config = default_config(base_dir="/srv/app")
    assert config.source == "<built-in default>"
    assert not config.remote_providers
    assert {m.kind for m in config.local_models.values()} == {
        LocalModelKind.SENTIMENT_RULES,
        LocalModelKind.EXTRACTIVE_SUMMARIZER,
    }
    assert config.route_for("sentiment").target == LocalModel("sentiment-rules")  # type: ignore[union-attr]
    assert config.route_for("summarize").target == LocalModel("summarizer")  # type: ignore[union-attr]
    assert config.default_target == LOCAL_PURE and config.cache_ttl_s == 3600.0
    assert config.l4.store_path == Path("/srv/app/.rtfs-state/l4")
    assert parse_config(DEFAULT_TOML, base_dir="/srv/app") == dataclasses.replace(
        config, source="<string>"
    )


def test_an_empty_file_is_all_defaults() -> None:
    config = parse_config("", base_dir="/x")
    assert config.default_target == LOCAL_PURE
    assert (config.cache_ttl_s, config.l1_max_entries, config.policy_version) == (
        3600.0,
        10_000,
        "1",
    )
    assert len(config.routes) == 0 and not config.local_models
    assert config.security.allowed_remote_providers == frozenset()


def test_optional_keys_and_defaults(tmp_path: Path) -> None:
    node, peer, other = (Ed25519PrivateKey.generate() for _ in range(3))
    (tmp_path / "keys").mkdir()
    save_private_key(node, tmp_path / "keys" / "node.key")
    (tmp_path / "keys" / "peer.pub").write_text(
        f"# the fleet's publishers\n{public_key_hex(peer)}\n\n{public_key_hex(other)}\n")
    config = parse_config(
        f"""
[delegation]
policy_version = "7"
l1_max_entries = 50
cache_ttl = 0
{PROVIDER}
{MODELS}
[delegation.local_models.runner]
kind = "command"
command = "llama-run"
[delegation.l4]
store = "s3://bucket/prefix"
signing_key = "keys/node.key"
trusted_keys = ["{public_key_hex(node)}", "keys/peer.pub"]
""",
        base_dir=tmp_path,
    )
    assert (config.policy_version, config.l1_max_entries, config.cache_ttl_s) == ("7", 50, 0.0)
    assert config.security.allowed_remote_providers == {"openai"}  # all declared by default
    assert config.remote_providers["openai"].capabilities == ()
    assert config.local_models["summarizer"].capabilities == ("summarize",)
    assert config.local_models["summarizer"].max_sentences == 3
    assert config.local_models["runner"].command == ("llama-run",)  # a bare name: PATH lookup
    assert config.l4.store_uri == "s3://bucket/prefix" and config.l4.store_path is None
    assert config.l4.signing_key == tmp_path / "keys" / "node.key"
    assert config.l4.trusted_keys == (
        KeyRef(public_key_hex(node), None, (public_key_hex(node),)),
        KeyRef("keys/peer.pub", tmp_path / "keys" / "peer.pub",
               (public_key_hex(peer), public_key_hex(other))),
    )
    assert config.state_dir == tmp_path / ".rtfs-state"


@pytest.mark.parametrize("setup, key, words", [
    ("trusted_keys = ['keys/missing.pub']", "trusted_keys[0]", "cannot read"),
    ("trusted_keys = ['keys/binary.pub']", "trusted_keys[0]", "not a key list"),
    ("trusted_keys = ['keys/bad.pub']", "trusted_keys[0]", "expected 64 hex"),
    ("trusted_keys = ['0123abcd0123abcd0123abcd0123abcd']", "trusted_keys", "trusted key"),
    ("signing_key = 'keys/bad.pub'", "signing_key", "bad.pub"),
])
def test_key_problems_are_config_errors_naming_the_key(tmp_path: Path, setup: str, key: str,
                                                       words: str) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "binary.pub").write_bytes(b"\xff\xfe\x00\x81 not text")
    (tmp_path / "keys" / "bad.pub").write_text("not-a-key\n")
    with pytest.raises(ConfigError) as info:
        parse_config(f"[delegation.l4]\n{setup}\n", source="d.toml", base_dir=tmp_path)
    message = str(info.value)
    assert message.startswith("d.toml:2: delegation.l4.") and key in message, message
    assert words in message, message


def test_config_is_frozen() -> None:
    config = default_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.cache_ttl_s = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.local_models["x"] = None  # type: ignore[index]


# --- errors: (text, line, key path, message fragment) --------------------------------------

ERRORS = [
    ("[delegatoin]\n", 1, "delegatoin", "did you mean 'delegation'"),
    ("[delegation]\ncache_tll = 5\n", 2, "delegation.cache_tll", "did you mean 'cache_ttl'"),
    ("[delegation]\n\ncache_ttl = -5\n", 3, "delegation.cache_ttl", "must be >= 0, not -5"),
    (
        '[delegation]\ncache_ttl = "1h"\n',
        2,
        "delegation.cache_ttl",
        "must be a number, not a string",
    ),
    ("delegation.cache_ttl = -1\n", 1, "delegation.cache_ttl", "must be >= 0"),
    ("delegation = { cache_ttl = true }\n", 1, "delegation.cache_ttl", "must be a number"),
    (
        '[delegation]\nenable_l4_cache = "yes"\n',
        2,
        "delegation.enable_l4_cache",
        "true or false, not a string",
    ),
    ("[delegation]\nl1_max_entries = 0\n", 2, "delegation.l1_max_entries", "must be >= 1"),
    ("[delegation]\npolicy_version = 1\n", 2, "delegation.policy_version", "must be a string"),
    (
        '[delegation]\ndefault_target = "remote-nope"\n',
        2,
        "delegation.default_target",
        "no remote provider 'nope' is declared",
    ),
    (
        '[delegation.static_routes]\n"ai-*" = "remote-opena"\n' + PROVIDER,
        2,
        'delegation.static_routes."ai-*"',
        "did you mean 'remote-openai'",
    ),
    (
        "[delegation.static_routes]\nx = 3\n",
        2,
        "delegation.static_routes.x",
        "must be a string, not an integer",
    ),
    (
        PROVIDER + MODELS + "[delegation.static_routes]\n\n"
        '"summarize" = { target = "remote-openai", fallback = "local-nope" }\n',
        14,
        "delegation.static_routes.summarize.fallback",
        "no local model 'nope'",
    ),
    (
        '[delegation.static_routes]\ns = { target = "local-pure", fallbak = "local-pure" }\n',
        2,
        "delegation.static_routes.s.fallbak",
        "did you mean 'fallback'",
    ),
    (
        '[delegation.static_routes]\ns = { fallback = "local-pure" }\n',
        2,
        "delegation.static_routes.s",
        "needs a 'target'",
    ),
    (
        '[delegation.static_routes]\ns = { target = "local-pure", fallback = "local-pure" }\n',
        2,
        "delegation.static_routes.s.fallback",
        "the fallback is the target itself",
    ),
    (
        '[delegation.static_routes]\n"ai-[" = "local-pure"\n',
        2,
        'delegation.static_routes."ai-["',
        "unclosed '['",
    ),
    (
        '[delegation.static_routes]\n" x" = "local-pure"\n',
        2,
        'delegation.static_routes." x"',
        "without outer spaces",
    ),
    (
        '[delegation.remote_providers.claude]\nkind = "anthropic-chat"\n',
        2,
        "delegation.remote_providers.claude.kind",
        "unknown kind 'anthropic-chat'",
    ),
    (
        '[delegation.remote_providers.p]\nkind = "openai-chat"\nbase_url = "http://h/v1"\n',
        1,
        "delegation.remote_providers.p",
        "missing required key 'model'",
    ),
    (
        (
            '[delegation.remote_providers.p]\nkind = "openai-chat"\nmodel = "m"\n'
            'base_url = "api.openai.com"\n'
        ),
        4,
        "delegation.remote_providers.p.base_url",
        "not an http(s) URL",
    ),
    (
        PROVIDER + "timeout_s = 0\n",
        7,
        "delegation.remote_providers.openai.timeout_s",
        "must be > 0",
    ),
    (
        PROVIDER + 'capabilities = [\n  "ok",\n  3,\n]\n',
        9,
        "delegation.remote_providers.openai.capabilities[1]",
        "must be a string, not an integer",
    ),
    (
        PROVIDER + 'capabilities = ["has space"]\n',
        7,
        "delegation.remote_providers.openai.capabilities[0]",
        "bad capability id",
    ),
    (
        '[delegation.local_models.s]\nkind = "extractive-summarizer"\nrules = "x"\n',
        3,
        "delegation.local_models.s.rules",
        "unknown key",
    ),
    (
        '[delegation.local_models.s]\nkind = "extractive-summarizer"\nmax_sentences = 0\n',
        3,
        "delegation.local_models.s.max_sentences",
        "must be >= 1",
    ),
    (
        '[delegation.local_models.c]\nkind = "command"\n',
        1,
        "delegation.local_models.c",
        "missing required key 'command'",
    ),
    (
        '[delegation.local_models.c]\nkind = "command"\ncommand = []\n',
        3,
        "delegation.local_models.c.command",
        "must name an executable",
    ),
    (
        '[delegation.local_models.c]\nkind = "gguf"\n',
        2,
        "delegation.local_models.c.kind",
        "unknown kind 'gguf'",
    ),
    (
        '[delegation.local_models."bad id!"]\nkind = "command"\n',
        1,
        'delegation.local_models."bad id!"',
        "an id is letters",
    ),
    (
        '[delegation.local_models]\nx = "sentiment-rules"\n',
        2,
        "delegation.local_models.x",
        "must be a table, not a string",
    ),
    (
        (
            '[delegation.local_models.pure]\nkind = "extractive-summarizer"\n'
            '[delegation]\ndefault_target = "local-pure"\n'
        ),
        4,
        "delegation.default_target",
        "ambiguous",
    ),
    (
        '[delegation.security]\nlevel = "paranoid"\n',
        2,
        "delegation.security.level",
        "unknown level 'paranoid' (known: 'standard', 'high', 'maximum')",
    ),
    (
        PROVIDER + '[delegation.security]\nallowed_remote_providers = ["openai", "nope"]\n',
        8,
        "delegation.security.allowed_remote_providers[1]",
        "no remote provider 'nope'",
    ),
    (
        '[delegation.security]\nsensitive = ["ok", "x[", ]\n',
        2,
        "delegation.security.sensitive[1]",
        "unclosed '['",
    ),
    (
        '[delegation.l4]\nstore = "ftp://host/x"\n',
        2,
        "delegation.l4.store",
        "a store URI starts with one of file://, ipfs://, memory://, s3://",
    ),
    ('[delegation.l4]\nstore = "file://"\n', 2, "delegation.l4.store", "needs a directory"),
    (
        '[delegation.l4]\ntrusted_keys = "k"\n',
        2,
        "delegation.l4.trusted_keys",
        "must be an array of strings",
    ),
]


@pytest.mark.parametrize(
    "text, line, key, message", ERRORS, ids=[f"{e[2]}-{i}" for i, e in enumerate(ERRORS)]
)
def test_errors_name_file_key_and_line(text: str, line: int, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="conf/delegation.toml", base_dir="/cfg")
    error = info.value
    assert (error.file, error.line, error.key_path) == ("conf/delegation.toml", line, key)
    assert message in error.message
    assert str(error).startswith(f"conf/delegation.toml:{line}: {key}: ")


def test_toml_syntax_error_reports_its_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            '[delegation]\ncache_ttl = 5\ndefault_target = "local-pure\n', source="bad.toml"
        )
    assert info.value.line == 3 and info.value.file == "bad.toml"
    assert "TOML syntax error" in str(info.value) and str(info.value).startswith("bad.toml:3:")


def test_toml_syntax_error_at_end_of_document() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("[delegation]\nx = [1,\n", source="eof.toml")
    assert info.value.line is not None and info.value.line >= 2


def test_duplicate_key_is_a_syntax_error_with_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("[delegation]\ncache_ttl = 1\ncache_ttl = 2\n")
    assert info.value.line == 3


def test_missing_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file") as info:
        load_config(tmp_path / "nope.toml")
    assert str(tmp_path / "nope.toml") in str(info.value)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe[delegation]")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary)


def test_load_config_anchors_paths_at_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "d.toml").write_text(
        '[delegation.local_models.s]\nkind = "sentiment-rules"\nrules = "m/s.rules"\n'
        '[delegation.l4]\nstore = "file://../state/l4"\n'
    )
    config = load_config(conf / "d.toml")
    assert config.local_models["s"].rules == conf / "m" / "s.rules"
    assert config.l4.store_path == tmp_path / "state" / "l4"
