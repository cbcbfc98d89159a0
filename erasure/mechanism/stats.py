"""Pooled statistics over every (prompt, position), reported with and without the BOS position.

The authors pool all values and plot seaborn's median with errorbar ("pi", 75), i.e. the 12.5-87.5 percentile
band; the paper's captions say 25-75. Both are reported (docs/methods.md §3, §6.1). Quantiles use numpy's default
linear interpolation, the same as seaborn's np.nanpercentile.

Given a prompt bootstrap (erasure.mechanism.bootstrap), the statistics claims are stated in (`INTERVAL_STATS`)
also get their 95% interval, stored beside them as `<stat>_low` / `<stat>_high`.
"""
from __future__ import annotations

import numpy as np

from erasure.mechanism.bootstrap import PromptBootstrap, add_interval

QUANTILES = {"median": 50.0, "q25": 25.0, "q75": 75.0, "q12_5": 12.5, "q87_5": 87.5}
INTERVAL_STATS = ("median", "q25", "q75")  # what the paper's claims are stated in (the 12.5/87.5 band is only drawn)


def summarize(values: np.ndarray) -> dict[str, float]:
    """Median, 25/75 and 12.5/87.5 percentiles, mean and count of a pooled 1-D array (NaNs dropped)."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return {**{k: None for k in QUANTILES}, "mean": None, "n": 0}
    qs = np.percentile(flat, list(QUANTILES.values()))
    return {**{k: float(q) for k, q in zip(QUANTILES, qs)}, "mean": float(flat.mean()), "n": int(flat.size)}


def summarize_pools(per_token: np.ndarray, boot: PromptBootstrap | None = None) -> dict[str, dict[str, float]]:
    """`summarize` of a (prompt, position) array: all positions, and without position 0 (BOS); with `boot`, the
    intervals of `INTERVAL_STATS` too."""
    return summarize_pools_with_draws(per_token, boot)[0]


def summarize_pools_with_draws(
    per_token: np.ndarray, boot: PromptBootstrap | None
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, np.ndarray]]]:
    """`summarize_pools`, plus each pool's bootstrap draws of `INTERVAL_STATS` (for quantities derived from them)."""
    per_token = np.asarray(per_token)
    stats, draws = {}, {}
    for pool, values in (("all", per_token), ("no_bos", per_token[:, 1:])):
        stats[pool] = summarize(values)
        if boot is None:
            continue
        draws[pool] = add_quantile_intervals(stats[pool], values, boot)
    return stats, draws


def add_quantile_intervals(target: dict, per_prompt: np.ndarray, boot: PromptBootstrap) -> dict[str, np.ndarray]:
    """Add `<stat>_low/_high` of every `INTERVAL_STATS` quantile of the pooled (prompt, ...) values to `target`;
    returns the draws by statistic."""
    qs = boot.quantiles(per_prompt, [QUANTILES[k] / 100 for k in INTERVAL_STATS])
    draws = dict(zip(INTERVAL_STATS, qs))
    for name, d in draws.items():
        add_interval(target, name, d, boot.level)
    return draws
