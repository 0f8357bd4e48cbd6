"""L2: the semantic result cache, safe by construction and calibrated per namespace.

Submodules: `cache` (`SemanticCache`, the facade the executor asks), `store` (`L2Store`, the
protocol a fleet implementation replaces, and `LocalL2Store`), `guard` (normalisation and the
lexical guard), `embedder` (`Embedder` protocol, `HashingEmbedder`), `minilm` (the int8
MiniLM model on onnxruntime), `models` (model ids), `index` (exact and hnswlib indexes),
`keys`, `calibration`, `book` (calibrations and shadow records in the state directory),
`pairs`, `labelled` (fow-cache pairs, generated hard negatives), `config` (`L2Config`),
`cli` (`delegation l2 ...`), `errors` and `testing` (conformance suites, for tests only).
"""

from __future__ import annotations

from delegation.l2.book import CalibrationBook
from delegation.l2.cache import L2Lookup, SemanticCache
from delegation.l2.calibration import Calibration
from delegation.l2.config import L2Config
from delegation.l2.embedder import Embedder, HashingEmbedder
from delegation.l2.keys import L2Call
from delegation.l2.models import DEFAULT_MODEL, make_embedder
from delegation.l2.store import L2Store, LocalL2Store

__all__ = [
    "DEFAULT_MODEL",
    "Calibration",
    "CalibrationBook",
    "Embedder",
    "HashingEmbedder",
    "L2Call",
    "L2Config",
    "L2Lookup",
    "L2Store",
    "LocalL2Store",
    "SemanticCache",
    "make_embedder",
]
