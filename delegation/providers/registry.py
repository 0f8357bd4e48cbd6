"""The provider and capability registries, and `build_registry`, the edge that reads secrets.

`build_registry(config, environ)` is the one place that looks at environment variables: it
reads the API keys the config names, proxy settings and PATH from the mapping it is given
(pass `os.environ` in a CLI, a dict in tests) and hands plain values to the providers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit
from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]

from delegation.config import (
    DelegationConfig,
    LocalModelConfig,
    LocalModelKind,
    ProviderKind,
    RemoteProviderConfig,
)
from delegation.errors import UnknownCapability, UnknownProvider
from delegation.extensions import Extensions, discover
from delegation.providers.base import Health, ModelProvider, ModelResult
from delegation.providers.command import CommandProvider
from delegation.providers.openai_chat import OpenAIChatProvider
from delegation.providers.remote_rtfs import RemoteRTFSProvider
from delegation.providers.sentiment import SentimentRulesProvider, load_rules
from delegation.providers.summarizer import ExtractiveSummarizer
from delegation.targets import ExecTarget, LocalModel, RemoteModel


class CapabilityRegistry:
    """Capability id (`summarize`, `translate`, ...) -> the targets that offer it, in order."""

    def __init__(self, entries: Iterable[tuple[str, ExecTarget]] = ()) -> None:
        self._lock = threading.Lock()
        self._targets: dict[str, tuple[ExecTarget, ...]] = {}
        for capability, target in entries:
            self.register(capability, target)

    def register(self, capability: str, target: ExecTarget) -> None:
        """Add `target` as the last choice for `capability` (a repeat is ignored)."""
        with self._lock:
            current = self._targets.get(capability, ())
            if target not in current:
                self._targets[capability] = current + (target,)

    def targets_for(self, capability: str) -> tuple[ExecTarget, ...]:
        """Return the targets offering `capability`, first choice first.

        Raises:
            UnknownCapability: nothing offers it.
        """
        targets = self._targets.get(capability)
        if not targets:
            raise UnknownCapability(capability, self.capabilities())
        return targets

    def capabilities(self) -> tuple[str, ...]:
        """Every registered capability id, sorted."""
        return tuple(sorted(self._targets))

    def __contains__(self, capability: object) -> bool:
        return capability in self._targets


class ProviderRegistry:
    """The providers of one runtime, by target: `LocalModel(id)` and `RemoteModel(id)`.

    Local models and remote providers have separate id spaces, as in the config. Unless a
    `CapabilityRegistry` is given, one is built from the providers' `capabilities`, remote
    providers first, each group in the given order.
    """

    def __init__(
        self,
        local: Mapping[str, ModelProvider] | None = None,
        remote: Mapping[str, ModelProvider] | None = None,
        capabilities: CapabilityRegistry | None = None,
    ) -> None:
        self._local = MappingProxyType(dict(local or {}))
        self._remote = MappingProxyType(dict(remote or {}))
        self._by_target: dict[ExecTarget, ModelProvider] = {}
        for pid, provider in self._remote.items():
            self._by_target[RemoteModel(pid)] = provider
        for mid, provider in self._local.items():
            self._by_target[LocalModel(mid)] = provider
        if capabilities is None:
            capabilities = CapabilityRegistry(
                (cap, target)
                for target, provider in self._by_target.items()
                for cap in provider.capabilities
            )
        self.capabilities = capabilities

    def get(self, target: ExecTarget) -> ModelProvider:
        """Return the provider behind a `LocalModel` or `RemoteModel` target.

        Raises:
            UnknownProvider: no provider is registered for it.
        """
        provider = self._by_target.get(target)
        if provider is None:
            raise UnknownProvider(str(target), tuple(str(t) for t in self._by_target))
        return provider

    def __contains__(self, target: object) -> bool:
        return target in self._by_target

    def infer(self, target: ExecTarget, prompt: str, **params: Any) -> ModelResult:
        """Run `prompt` on the provider behind `target`."""
        return self.get(target).infer(prompt, **params)

    def health(self, target: ExecTarget) -> Health:
        """Health of the provider behind `target`."""
        return self.get(target).health()

    def targets(self) -> tuple[ExecTarget, ...]:
        """Every model target: remote providers first, then local models."""
        return tuple(self._by_target)

    @property
    def local_ids(self) -> tuple[str, ...]:
        """Ids of the local models."""
        return tuple(self._local)

    @property
    def remote_ids(self) -> tuple[str, ...]:
        """Ids of the remote providers."""
        return tuple(self._remote)


# --- the edge ------------------------------------------------------------------------------


def resolve_secrets(config: DelegationConfig, environ: Mapping[str, str]) -> dict[str, str | None]:
    """Return remote provider id -> its API key from `environ` (None if unset or empty)."""
    keys: dict[str, str | None] = {}
    for pid, provider in config.remote_providers.items():
        value = environ.get(provider.api_key_env) if provider.api_key_env else None
        keys[pid] = value or None
    return keys


def proxies_from(environ: Mapping[str, str]) -> dict[str, str]:
    """Return scheme -> proxy URL from `http_proxy` / `HTTPS_PROXY` style variables, and
    "no" -> the `no_proxy` / `NO_PROXY` list when one is set."""
    proxies = {}
    for scheme in ("http", "https", "no"):
        value = environ.get(f"{scheme}_proxy") or environ.get(f"{scheme.upper()}_PROXY")
        if value:
            proxies[scheme] = value
    return proxies


def proxy_for(url: str, proxies: Mapping[str, str]) -> str | None:
    """The proxy to reach `url` through, or None when none applies or `NO_PROXY` exempts
    its host (matching as curl and urllib do: exact host, domain suffix, or `*`)."""
    parts = urlsplit(url)
    proxy = proxies.get(parts.scheme)
    if proxy is None:
        return None
    host = parts.hostname or ""
    if "no" in proxies and proxy_bypass_environment(host, {"no": proxies["no"]}):
        return None
    return proxy


@dataclass(frozen=True)
class BuildContext:
    """What a provider factory gets besides its config: the secrets and settings read from
    the environment at the edge, and the clocks."""

    api_key: str | None
    proxies: Mapping[str, str]
    environ: Mapping[str, str]
    clock: Callable[[], float]
    timer: Callable[[], float]


def build_registry(
    config: DelegationConfig,
    environ: Mapping[str, str],
    *,
    clock: Callable[[], float] = time.monotonic,
    timer: Callable[[], float] = time.perf_counter,
    extensions: Extensions | None = None,
) -> ProviderRegistry:
    """Build every provider the config declares.

    Args:
        config: the validated config.
        environ: environment variables (API keys, proxies, PATH); only read here.
        clock: monotonic clock for health caches; timer: for latencies.
        extensions: builds the provider kinds other packages registered (default: the
            installed extensions).

    Raises:
        ConfigError: a local model's rules file is missing or invalid (names file and line).
    """
    keys = resolve_secrets(config, environ)
    proxies = proxies_from(environ)
    kinds = (extensions if extensions is not None else discover()).provider_kinds
    remote = {}
    for pid, cfg in config.remote_providers.items():
        spec = kinds.get(cfg.kind)
        if spec is not None:
            remote[pid] = spec.build(cfg, BuildContext(keys[pid], proxies, environ, clock, timer))
        else:
            remote[pid] = _remote(cfg, keys[pid], proxies, clock, timer)
    runner_env = {k: v for k, v in environ.items() if k not in _secret_names(config)}
    local = {mid: _local(cfg, runner_env, timer) for mid, cfg in config.local_models.items()}
    return ProviderRegistry(local, remote)


def _secret_names(config: DelegationConfig) -> set[str]:
    return {p.api_key_env for p in config.remote_providers.values() if p.api_key_env}


def _remote(
    cfg: RemoteProviderConfig,
    api_key: str | None,
    proxies: Mapping[str, str],
    clock: Callable[[], float],
    timer: Callable[[], float],
) -> ModelProvider:
    if cfg.kind == ProviderKind.REMOTE_RTFS:
        return RemoteRTFSProvider(
            cfg.id, endpoint=cfg.base_url, token=api_key, token_env=cfg.api_key_env,
            timeout_s=cfg.timeout_s, health_ttl_s=cfg.health_ttl_s,
            cost_per_call=cfg.cost_per_call, capabilities=cfg.capabilities,
            proxy=proxy_for(cfg.base_url, proxies), clock=clock, timer=timer)
    if cfg.kind != ProviderKind.OPENAI_CHAT:
        raise UnknownProvider(f"{cfg.id} of kind {cfg.kind!r}", tuple(str(k) for k in ProviderKind))
    return OpenAIChatProvider(
        cfg.id,
        base_url=cfg.base_url,
        model=cfg.model,
        api_key=api_key,
        api_key_env=cfg.api_key_env,
        timeout_s=cfg.timeout_s,
        health_ttl_s=cfg.health_ttl_s,
        cost_per_call=cfg.cost_per_call,
        capabilities=cfg.capabilities,
        proxy=proxy_for(cfg.base_url, proxies),
        clock=clock,
        timer=timer,
    )


def _local(
    cfg: LocalModelConfig, runner_env: Mapping[str, str], timer: Callable[[], float]
) -> ModelProvider:
    common: dict[str, Any] = {
        "cost_per_call": cfg.cost_per_call,
        "capabilities": cfg.capabilities,
        "timer": timer,
    }
    if cfg.kind is LocalModelKind.SENTIMENT_RULES:
        rules = load_rules(cfg.rules) if cfg.rules is not None else None
        return SentimentRulesProvider(cfg.id, rules, **common)
    if cfg.kind is LocalModelKind.EXTRACTIVE_SUMMARIZER:
        return ExtractiveSummarizer(cfg.id, max_sentences=cfg.max_sentences, **common)
    return CommandProvider(
        cfg.id,
        cfg.command,
        display=cfg.command_display,
        timeout_s=cfg.timeout_s,
        max_output_bytes=cfg.max_output_bytes,
        search_path=runner_env.get("PATH"),
        env=runner_env,
        **common,
    )
