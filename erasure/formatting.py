"""How the report and the paper write a number: fixed decimals, a percentage, an interval, a confidence level.

One rule each, so the findings (erasure.verification) and the paper's filters (erasure.paper.values) print a value
the same way; what a missing or non-numeric value shows ("n/a", a `missing:` marker) stays with each caller.
"""
from __future__ import annotations

from typing import Any


def as_number(x: Any) -> float | None:
    """x as a float, or None when it is not a number (a bool is not one)."""
    return None if isinstance(x, bool) or not isinstance(x, (int, float)) else float(x)


def fixed(x: float, digits: int) -> str:
    """0.8623 -> "0.86" (digits=2)."""
    return f"{x:.{digits}f}"


def percent(x: float, digits: int = 0) -> str:
    """A fraction as a percentage: 0.85 -> "85%"."""
    return f"{100 * x:.{digits}f}%"


def interval(low: float, high: float, digits: int) -> str:
    """An interval as "low to high"."""
    return f"{fixed(low, digits)} to {fixed(high, digits)}"


def level_text(level: float) -> str:
    """A confidence level: 0.95 -> "95%", 0.9 -> "90%"."""
    return f"{100 * level:g}%"
