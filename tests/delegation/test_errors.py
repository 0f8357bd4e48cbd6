"""Every delegation error pickles, keeps its fields and message, and has the right bases."""

from __future__ import annotations

import inspect
import pickle

import pytest

from delegation import errors
from delegation.errors import (
    ALL_ERRORS,
    CallUnavailable,
    ConfigError,
    DelegationError,
    MetadataError,
    PlanCacheError,
    ProviderError,
    ProviderInputError,
    ProviderTimeout,
    ProviderUnavailable,
    SecurityViolation,
    StorageFailure,
    TargetError,
    UnknownCapability,
    UnknownProvider,
    UsageError,
    format_key_path,
)

SAMPLES: list[tuple[DelegationError, type[BaseException], dict[str, object]]] = [
    (UsageError("--meta takes an RTFS map"), ValueError, {}),
    (DelegationError("boom"), Exception, {}),
    (
        ConfigError("bad value", "a/delegation.toml", ("delegation", "cache_ttl"), 4),
        ValueError,
        {"file": "a/delegation.toml", "line": 4, "key_path": "delegation.cache_ttl"},
    ),
    (
        TargetError(["local-model"], "tag 'local-model' takes 1 field(s)"),
        ValueError,
        {"value": ["local-model"]},
    ),
    (
        MetadataError("confidence", 2.0, "must be between 0 and 1"),
        ValueError,
        {"key": "confidence", "value": 2.0},
    ),
    (PlanCacheError("/tmp/plans", "not msgpack"), ValueError, {"path": "/tmp/plans"}),
    (
        ProviderUnavailable("openai", "OPENAI_API_KEY not set"),
        ConnectionError,
        {"provider_id": "openai", "reason": "OPENAI_API_KEY not set"},
    ),
    (ProviderTimeout("openai", "no answer within 10 s"), TimeoutError, {"provider_id": "openai"}),
    (
        ProviderError("openai", "POST returned HTTP 500", 500, "oops"),
        RuntimeError,
        {"status": 500, "body": "oops"},
    ),
    (
        ProviderInputError("summarizer", "prompt must be a string"),
        TypeError,
        {"provider_id": "summarizer"},
    ),
    (UnknownProvider("LocalModel(x)", ("LocalModel(y)",)), KeyError, {"target": "LocalModel(x)"}),
    (UnknownCapability("translate", ("summarize",)), KeyError, {"capability": "translate"}),
    (
        SecurityViolation("generate-code", "sensitive and no local target"),
        PermissionError,
        {"symbol": "generate-code"},
    ),
    (
        CallUnavailable("translate", "RemoteModel(translator) unavailable: no key"),
        ConnectionError,
        {"symbol": "translate", "reason": "RemoteModel(translator) unavailable: no key"},
    ),
    (StorageFailure("word-count", "publish failed"), OSError, {"what": "word-count"}),
]


@pytest.mark.parametrize("error, builtin, fields", SAMPLES, ids=lambda v: type(v).__name__)
def test_error_pickles_with_fields_message_and_bases(
    error: DelegationError, builtin: type[BaseException], fields: dict[str, object]
) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert copy.args == error.args
    assert str(copy) == str(error)
    assert isinstance(copy, DelegationError) and isinstance(copy, builtin)
    for name, value in fields.items():
        assert getattr(copy, name) == value


def test_samples_cover_every_error_class() -> None:
    defined = {
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, DelegationError)
    }
    assert defined == set(ALL_ERRORS)
    assert {type(e) for e, _, _ in SAMPLES} == defined


def test_config_error_message_names_file_line_and_key() -> None:
    error = ConfigError(
        "must be >= 0, not -1", "conf/delegation.toml", ("delegation", "static_routes", "ai-*"), 12
    )
    assert (
        str(error) == 'conf/delegation.toml:12: delegation.static_routes."ai-*": '
        "must be >= 0, not -1"
    )
    assert (
        str(ConfigError("TOML syntax error: x", "f.toml", None, 3))
        == "f.toml:3: TOML syntax error: x"
    )
    assert str(ConfigError("no line", None, "a.b")) == "<config>: a.b: no line"


def test_provider_timeout_is_caught_as_unavailable() -> None:
    with pytest.raises(ProviderUnavailable):
        raise ProviderTimeout("openai", "slow")


@pytest.mark.parametrize(
    "path, text",
    [
        (("delegation", "cache_ttl"), "delegation.cache_ttl"),
        (("delegation", "static_routes", "ai-*"), 'delegation.static_routes."ai-*"'),
        (("a", 'say "hi"'), 'a."say \\"hi\\""'),
        (("security", "sensitive", 1), "security.sensitive[1]"),
        ((), ""),
    ],
)
def test_format_key_path_spells_paths_like_toml(path: tuple, text: str) -> None:
    assert format_key_path(path) == text
