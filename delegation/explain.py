"""What `delegation run --explain` and `--json` print."""

from __future__ import annotations

import json
from typing import Any

from delegation.runtime import FunctionRecord
from delegation.trace import CallRecord
from rtfs.printer import to_readable

_COLUMNS = ("#", "call", "target", "decided by", "latency", "L1", "L2", "outcome")


def _outcome(record: CallRecord) -> str:
    if record.outcome == "ok":
        return f"ok: {record.detail[:48]}"
    return record.outcome


def explain_table(calls: list[CallRecord], functions: list[FunctionRecord], *,
                  config_source: str, plans_restored: int) -> str:
    """The per-call routing table, then why each call went where it went."""
    rows = [(str(i), c.symbol, c.target, c.layer, f"{c.latency_s * 1e3:.1f} ms", c.cache,
             c.l2, _outcome(c)) for i, c in enumerate(calls, 1)]
    widths = [max(len(row[i]) for row in [_COLUMNS, *rows]) for i in range(len(_COLUMNS))]
    lines = [f"config: {config_source}", "",
             "  ".join(h.ljust(w) for h, w in zip(_COLUMNS, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
    if not calls:
        lines.append("(no routed calls)")
    lines += ["", "why:"]
    for i, call in enumerate(calls, 1):
        lines.append(f"  {i}. {call.symbol}: {call.reason}")
        lines += [f"       {note}" for note in call.notes]
        lines += [f"       tried {attempt}" for attempt in call.attempts]
        if call.outcome != "ok" and call.detail not in call.reason:
            lines.append(f"       -> {call.detail}")
    if functions:
        lines += ["", "functions:"]
        for fn in functions:
            lines.append(f"  {fn.name}: {fn.origin} (source {fn.source_hash[:16]}) {fn.detail}")
    hits = sum(c.cache == "hit" for c in calls)
    stored = sum(c.cache == "stored" for c in calls)
    lines += ["", f"L1 plans: {hits} hit, {stored} stored this run; {plans_restored} restored "
                  "at start"]
    return "\n".join(lines)


def as_json(value: Any, calls: list[CallRecord], functions: list[FunctionRecord],
            *, config_source: str, error: str | None = None) -> str:
    document = {
        "config": config_source,
        "value": to_readable(value) if error is None else None,
        "error": error,
        "calls": [c.to_dict() for c in calls],
        "functions": [vars(f) for f in functions],
    }
    return json.dumps(document, indent=2, default=str)
