"""The one output of every benchmark: a JSON line per figure, which run_all.py collects."""

from __future__ import annotations

import json
from typing import Any


def emit(
    name: str,
    value: float,
    unit: str,
    baseline: float | None = None,
    params: dict[str, Any] | None = None,
    *,
    digits: int = 2,
) -> None:
    """Print ``{"name", "value", "unit", "baseline", "ratio", "params"}``; the ratio is
    value / baseline (None without a baseline, or against a baseline of 0)."""
    line = {
        "name": name,
        "value": round(value, digits),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, digits),
        "ratio": round(value / baseline, digits + 1) if baseline else None,
        "params": params or {},
    }
    print(json.dumps(line), flush=True)
