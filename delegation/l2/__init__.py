"""L2: the semantic result cache, safe by construction and calibrated per namespace.

Submodules: `cache` (`SemanticCache`, the facade the executor asks), `store` (`L2Store`, the
protocol a fleet implementation replaces, and `LocalL2Store`), `guard` (normalisation and the
lexical guard), `embedder` (`Embedder` protocol, `HashingEmbedder`), `minilm` (the int8
MiniLM model on onnxruntime), `models` (model ids), `index` (exact and hnswlib indexes),
`keys`, `calibration`, `book` (calibrations and shadow records in the state directory),
`pairs`, `labelled` (fow-cache pairs, generated hard negatives), `config` (`L2Config`),
`cli` (`delegation l2 ...`), `errors` and `testing` (conformance suites, for tests only).

Importing this package (or `delegation.l2.config`) is cheap: numpy and the model load only
with the modules that need them.
"""
