"""Figures as JSON lines (DESIGN §8): one object per figure, with its unit."""

from __future__ import annotations

import json
import statistics
import sys


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: q=0.5 is the median, q=0.99 the 99th percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values)


def emit(name: str, **fields: object) -> None:
    print(json.dumps({"figure": name, **fields}), flush=True)


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
