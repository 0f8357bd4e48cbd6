"""The calibration book: each namespace's calibration and shadow record, in the state directory.

A namespace uses its own calibration when that was measured with the embedder in use (model
id, weights checksum and guard version); otherwise the default shipped for the model (see
`delegation/l2/data/calibrations.json`); with neither, it serves exact hits only. A
calibration made for another model is kept but not used, and `Effective.note` says to
recalibrate.

Shadow verification feeds `record_shadow`: once the false-hit rate measured on verified
semantic hits exceeds the namespace's target with 95% confidence (its one-sided lower
Clopper-Pearson bound is above the target), the namespace stops serving semantic hits, says
why, and stays off (across restarts) until it is calibrated again.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from delegation.l2.calibration import DEFAULT_CONFIDENCE, Calibration, binomial_lower
from delegation.l2.embedder import Embedder
from delegation.l2.errors import CacheStateError
from storage import atomic_write

BOOK_FORMAT = 1
BOOK_KIND = "rtfs-l2-calibrations"
DEFAULTS_KIND = "rtfs-l2-default-calibrations"
BOOK_FILE = "l2-calibrations.json"


@dataclass(frozen=True, slots=True)
class ShadowRecord:
    """Verified semantic hits of a namespace and how many were wrong."""

    checks: int = 0
    false_hits: int = 0
    off_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Effective:
    """The calibration a namespace uses now, and why.

    Attributes:
        calibration: the one in force, or None (exact hits only).
        origin: "namespace", "default" or "none".
        note: a remark for explanations (e.g. a stale calibration to redo), or "".
        off_reason: why semantic hits are off in this namespace, or None when they are on.
    """

    calibration: Calibration | None
    origin: str
    note: str
    off_reason: str | None

    @property
    def threshold(self) -> float | None:
        """The cosine threshold in force, or None when semantic hits are off."""
        if self.off_reason is not None or self.calibration is None:
            return None
        return self.calibration.threshold


class CalibrationBook:
    """Namespace calibrations and shadow records, persisted as JSON; thread-safe.

    Args:
        path: the book file (None keeps it in memory only).
        defaults: calibration per model id (default: the ones shipped with the package).
        confidence: confidence of the shadow test that turns a namespace off.

    Raises:
        CacheStateError: the file exists but is not a calibration book.
    """

    def __init__(self, path: str | Path | None = None,
                 defaults: Mapping[str, Calibration] | None = None, *,
                 confidence: float = DEFAULT_CONFIDENCE) -> None:
        self.path = Path(path) if path is not None else None
        self.defaults = dict(shipped_defaults() if defaults is None else defaults)
        self.confidence = confidence
        self._lock = threading.Lock()
        self._calibrations: dict[str, Calibration] = {}
        self._shadows: dict[str, ShadowRecord] = {}
        if self.path is not None:
            self._load(self.path)

    @classmethod
    def in_state_dir(cls, state_dir: str | Path, **kwargs: Any) -> CalibrationBook:
        """The book kept in `state_dir` (created on first save)."""
        return cls(Path(state_dir) / BOOK_FILE, **kwargs)

    # --- reading ------------------------------------------------------------------------

    def get(self, namespace: str) -> Calibration | None:
        """The namespace's own calibration (whatever model it was made for), or None."""
        with self._lock:
            return self._calibrations.get(namespace)

    def shadow(self, namespace: str) -> ShadowRecord:
        """The namespace's shadow record."""
        with self._lock:
            return self._shadows.get(namespace, ShadowRecord())

    def namespaces(self) -> list[str]:
        """Namespaces with a calibration or a shadow record, sorted."""
        with self._lock:
            return sorted(set(self._calibrations) | set(self._shadows))

    def effective(self, namespace: str, embedder: Embedder) -> Effective:
        """What `namespace` uses with `embedder`, and whether semantic hits are off."""
        with self._lock:
            own = self._calibrations.get(namespace)
            off = self._shadows.get(namespace, ShadowRecord()).off_reason
        note = ""
        if own is not None and own.holds_for(embedder):
            return Effective(own, "namespace", note, off)
        if own is not None:
            note = (f"namespace {namespace} was calibrated for {own.model_id} "
                    f"(weights {own.weights_sha256[:12]}, guard v{own.guard_version}), not "
                    f"{embedder.model_id} (weights {embedder.weights_sha256[:12]}): recalibrate")
        default = self.defaults.get(embedder.model_id)
        if default is not None and default.holds_for(embedder):
            return Effective(default, "default", note, off)
        missing = f"no calibration for {embedder.model_id}: exact hits only"
        return Effective(None, "none", f"{note}; {missing}" if note else missing, off)

    # --- writing ------------------------------------------------------------------------

    def set(self, namespace: str, calibration: Calibration) -> None:
        """Make `calibration` the namespace's own; its shadow record starts afresh."""
        with self._lock:
            self._calibrations[namespace] = calibration
            self._shadows.pop(namespace, None)
        self.save()

    def record_shadow(self, namespace: str, agreed: bool, target_rate: float) -> ShadowRecord:
        """Count one verified semantic hit; turn the namespace off when it fails its target."""
        with self._lock:
            record = self._shadows.get(namespace, ShadowRecord())
            checks, wrong = record.checks + 1, record.false_hits + (not agreed)
            record = replace(record, checks=checks, false_hits=wrong)
            turned_off = False
            if record.off_reason is None and wrong:
                lower = binomial_lower(wrong, checks, self.confidence)
                if lower > target_rate:
                    record = replace(record, off_reason=(
                        f"shadow checks found {wrong} wrong answer(s) in {checks} verified "
                        f"semantic hits: false-hit rate >= {lower:.1%} with "
                        f"{self.confidence:.0%} confidence, above the {target_rate:.1%} "
                        "target; recalibrate to turn semantic hits back on"))
                    turned_off = True
            self._shadows[namespace] = record
        if turned_off:
            self.save()
        return record

    def save(self) -> None:
        """Write the book (atomically); nothing to do for an in-memory book."""
        if self.path is None:
            return
        with self._lock:
            names = sorted(set(self._calibrations) | set(self._shadows))
            doc = {"format": BOOK_FORMAT, "kind": BOOK_KIND, "namespaces": {
                ns: _namespace_doc(self._calibrations.get(ns), self._shadows.get(ns))
                for ns in names}}
        data = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()
        try:
            atomic_write(self.path, data)
        except OSError as e:
            raise CacheStateError(str(self.path), f"cannot write: {e.strerror or e}") from e

    def _load(self, path: Path) -> None:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CacheStateError(str(path), f"cannot read: {e}") from e
        if not (isinstance(doc, dict) and doc.get("kind") == BOOK_KIND
                and doc.get("format") == BOOK_FORMAT and isinstance(doc.get("namespaces"), dict)):
            raise CacheStateError(str(path), f"not a {BOOK_KIND} file of format {BOOK_FORMAT}")
        for ns, entry in doc["namespaces"].items():
            try:
                calibration, shadow = _read_namespace(entry)
            except (KeyError, TypeError, ValueError) as e:
                raise CacheStateError(str(path), f"namespace {ns!r}: {e}") from e
            if calibration is not None:
                self._calibrations[ns] = calibration
            self._shadows[ns] = shadow


def _namespace_doc(calibration: Calibration | None, shadow: ShadowRecord | None) -> Any:
    shadow = shadow or ShadowRecord()
    return {"calibration": calibration.to_dict() if calibration is not None else None,
            "shadow": {"checks": shadow.checks, "false_hits": shadow.false_hits,
                       "off_reason": shadow.off_reason}}


def _read_namespace(entry: Any) -> tuple[Calibration | None, ShadowRecord]:
    raw = entry["calibration"]
    calibration = Calibration.from_dict(raw) if raw is not None else None
    shadow = entry["shadow"]
    checks, wrong, reason = shadow["checks"], shadow["false_hits"], shadow["off_reason"]
    if not (isinstance(checks, int) and isinstance(wrong, int) and 0 <= wrong <= checks):
        raise ValueError("malformed shadow record")
    if reason is not None and not isinstance(reason, str):
        raise TypeError("off_reason must be a string or null")
    return calibration, ShadowRecord(checks, wrong, reason)


def shipped_defaults() -> dict[str, Calibration]:
    """The default calibration per model id that ships with the package."""
    text = (resources.files("delegation.l2") / "data" / "calibrations.json").read_text("utf-8")
    doc = json.loads(text)
    if doc.get("kind") != DEFAULTS_KIND:
        raise CacheStateError("delegation/l2/data/calibrations.json", "wrong kind")
    return {c.model_id: c for c in map(Calibration.from_dict, doc["calibrations"])}
