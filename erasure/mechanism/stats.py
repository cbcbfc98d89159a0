"""Pooled statistics over every (prompt, position), reported with and without the BOS position.

The authors pool all values and plot seaborn's median with errorbar ("pi", 75), i.e. the 12.5-87.5 percentile
band; the paper's captions say 25-75. Both are reported (docs/methods.md §3, §6.1). Quantiles use numpy's default
linear interpolation, the same as seaborn's np.nanpercentile.
"""
from __future__ import annotations

import numpy as np

QUANTILES = {"median": 50.0, "q25": 25.0, "q75": 75.0, "q12_5": 12.5, "q87_5": 87.5}


def summarize(values: np.ndarray) -> dict[str, float]:
    """Median, 25/75 and 12.5/87.5 percentiles, mean and count of a pooled array.

    Every value must be finite: dropping NaN/inf would compute the statistics over whatever remains without a
    word, so the readers of the tables refuse them where they enter and this is only the last guard.
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size == 0 or not np.isfinite(flat).all():
        raise ValueError(f"summarize needs finite values, got {flat.size} with {int((~np.isfinite(flat)).sum())} "
                         "NaN/inf")
    qs = np.percentile(flat, list(QUANTILES.values()))
    return {**{k: float(q) for k, q in zip(QUANTILES, qs)}, "mean": float(flat.mean()), "n": int(flat.size)}


def summarize_pools(per_token: np.ndarray) -> dict[str, dict[str, float]]:
    """`summarize` of a (prompt, position) array: all positions, and without position 0 (BOS)."""
    return {"all": summarize(per_token), "no_bos": summarize(per_token[:, 1:])}
