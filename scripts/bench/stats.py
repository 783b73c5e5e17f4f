"""Percentiles as every benchmark reports them."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def pct(values: Sequence[float], q: float, digits: int = 2) -> float:
    """The nearest-rank `q`th percentile."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[index], digits)


def summary(values: Sequence[float], digits: int = 2) -> dict[str, float]:
    """p50, p95 and the mean."""
    return {"p50": pct(values, 50, digits), "p95": pct(values, 95, digits),
            "mean": round(statistics.fmean(values), digits)}
