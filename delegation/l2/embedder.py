"""The `Embedder` protocol and a cheap deterministic embedder.

A threshold is a property of one embedding model: cosines from two models are not comparable.
So an embedder names itself (`model_id`) and the exact weights it runs (`weights_sha256`), and
a calibration records both; the cache uses a calibration only with the embedder it was made
with. `delegation.l2.testing.EmbedderTests` is the conformance suite every embedder runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import xxhash

from delegation.l2.errors import EmbedderInputError
from delegation.l2.guard import tokenize


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised vectors; the cosine of two texts is a dot product.

    Attributes:
        model_id: names the model and its pipeline (pooling, normalisation, max tokens).
        weights_sha256: hex SHA-256 of the weights it runs (for a model without weight
            files, of the parameters that define it), so a calibration can tell a changed
            model from the one it measured.
        dimension: the length of every vector.
    """

    @property
    def model_id(self) -> str: ...

    @property
    def weights_sha256(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed `texts`.

        Returns:
            a float32 array of shape `(len(texts), dimension)` whose rows have unit length;
            a text's row does not depend on the other texts of the batch.

        Raises:
            EmbedderInputError: an item is not a string.
            EmbedderUnavailable: the model cannot be loaded.
        """
        ...


def check_texts(model_id: str, texts: Sequence[str]) -> list[str]:
    """Return `texts` as a list, or raise `EmbedderInputError` naming the first non-string."""
    if isinstance(texts, str):
        raise EmbedderInputError(model_id, "embed takes a sequence of strings, not one string")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise EmbedderInputError(model_id, f"item {i} is {type(text).__name__}, not str")
    return out


def cosine(u: np.ndarray, v: np.ndarray) -> float:
    """The cosine of two unit vectors, computed one way everywhere (calibration and lookup)."""
    return float(np.dot(u.astype(np.float64), v.astype(np.float64)))


class HashingEmbedder:
    """A deterministic bag of hashed word and character-trigram features.

    No weights, no model, microseconds per text: for unit tests and as a lexical fallback.
    Texts sharing words score high, so it is calibrated like any other model; it knows
    nothing of synonyms.
    """

    def __init__(self, dimension: int = 256, seed: int = 0) -> None:
        if dimension < 8:
            raise ValueError(f"dimension must be >= 8, not {dimension}")
        self._dimension = dimension
        self._seed = seed
        self._model_id = f"hashing-ngram-v1-d{dimension}" + (f"-s{seed}" if seed else "")
        spec = f"hashing-ngram-v1 dimension={dimension} seed={seed}".encode()
        self._sha256 = hashlib.sha256(spec).hexdigest()

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def weights_sha256(self) -> str:
        return self._sha256

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """See `Embedder.embed`."""
        items = check_texts(self._model_id, texts)
        out = np.zeros((len(items), self._dimension), dtype=np.float32)
        for row, text in enumerate(items):
            self._fill(out[row], text)
        return out

    def _fill(self, row: np.ndarray, text: str) -> None:
        words = tokenize(text) or [""]  # the empty text still gets a (fixed) unit vector
        grams = [f"w:{w}" for w in words]
        for word in words:
            padded = f" {word} "
            grams += [f"c:{padded[i:i + 3]}" for i in range(max(1, len(padded) - 2))]
        for gram in grams:
            h = xxhash.xxh3_64_intdigest(gram.encode(), seed=self._seed)
            row[h % self._dimension] += 1.0 if (h >> 63) else -1.0
        norm = float(np.linalg.norm(row))
        if norm == 0.0:  # every feature cancelled out: fall back to one fixed axis
            row[0] = 1.0
        else:
            row /= norm
