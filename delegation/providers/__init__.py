"""Model providers: the `ModelProvider` protocol, its implementations and the registries."""

from __future__ import annotations

from delegation.providers.base import BaseProvider, Health, ModelProvider, ModelResult
from delegation.providers.command import CommandProvider
from delegation.providers.openai_chat import OpenAIChatProvider
from delegation.providers.registry import (
    CapabilityRegistry,
    ProviderRegistry,
    build_registry,
    proxies_from,
    proxy_for,
    resolve_secrets,
)
from delegation.providers.sentiment import SentimentRules, SentimentRulesProvider, load_rules
from delegation.providers.summarizer import ExtractiveSummarizer

__all__ = [
    "BaseProvider",
    "CapabilityRegistry",
    "CommandProvider",
    "ExtractiveSummarizer",
    "Health",
    "ModelProvider",
    "ModelResult",
    "OpenAIChatProvider",
    "ProviderRegistry",
    "SentimentRules",
    "SentimentRulesProvider",
    "build_registry",
    "load_rules",
    "proxies_from",
    "proxy_for",
    "resolve_secrets",
]
