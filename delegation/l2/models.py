"""The embedding models the configuration can name, by model id."""

from __future__ import annotations

from collections.abc import Callable

from delegation.l2.config import DEFAULT_MODEL, MODEL_IDS
from delegation.l2.embedder import Embedder, HashingEmbedder
from delegation.l2.errors import EmbedderUnavailable
from delegation.l2.minilm import MODEL_ID as MINILM_ID
from delegation.l2.minilm import MiniLMEmbedder

_FACTORIES: dict[str, Callable[[], Embedder]] = {
    MINILM_ID: MiniLMEmbedder,
    "hashing-ngram-v1-d256": lambda: HashingEmbedder(256),
}
assert tuple(_FACTORIES) == MODEL_IDS and DEFAULT_MODEL == MINILM_ID

__all__ = ["DEFAULT_MODEL", "known_models", "make_embedder"]


def known_models() -> tuple[str, ...]:
    """The model ids `make_embedder` knows, the default first."""
    return tuple(_FACTORIES)


def make_embedder(model_id: str) -> Embedder:
    """Build (and load) the embedder named `model_id`.

    Raises:
        EmbedderUnavailable: the id is unknown, or its package or weights are missing.
    """
    factory = _FACTORIES.get(model_id)
    if factory is None:
        raise EmbedderUnavailable(model_id, f"unknown model (known: {', '.join(_FACTORIES)})")
    return factory()
