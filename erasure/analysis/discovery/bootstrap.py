"""Bootstrap over prompts for discovery: how often the top writer is chosen, and intervals for its numbers.

Tokens of one prompt are not independent, so the unit of resampling is the prompt: each draw takes n prompts with
replacement (multinomial counts, seeded), and every pooled-token quantile is recomputed exactly on the resampled
set (a token counts as often as its prompt was drawn). The quantile is the inverted-CDF one (the smallest value
whose cumulative weight reaches q of the total); with thousands of tokens it differs from the full scan's
histogram quantiles by far less than the intervals' width. Intervals are the 2.5 and 97.5 percentiles of the
draws (percentile bootstrap).
"""
from __future__ import annotations

import numpy as np
import torch

CI = (2.5, 97.5)


def prompt_counts(n_prompts: int, n_draws: int, seed: int) -> torch.Tensor:
    """(n_draws, n_prompts) int32: how often each prompt is drawn in each resample."""
    g = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, n_prompts, (n_draws, n_prompts), generator=g)
    counts = torch.zeros(n_draws, n_prompts, dtype=torch.int32)
    counts.scatter_add_(1, picks, torch.ones_like(picks, dtype=torch.int32))
    return counts


class PooledQuantiles:
    """Quantiles of many series over pooled tokens, for any prompt weighting (one sort, then a cumsum per draw)."""

    def __init__(self, values: torch.Tensor, prompt_of_token: torch.Tensor):
        """values (tokens, series) float32, NaN = no value; prompt_of_token (tokens,) int64."""
        sorted_values, order = torch.sort(values.T.contiguous(), dim=1)  # NaN sort last
        self.values = sorted_values
        self.prompt = prompt_of_token[order]  # (series, tokens): the prompt of each sorted value
        self.finite = torch.isfinite(sorted_values)

    def quantiles(self, qs: list[float], weights: torch.Tensor) -> np.ndarray:
        """(len(qs), series) quantiles when prompt p counts weights[p] times; NaN for a series without values."""
        w = weights.to(torch.int64)[self.prompt] * self.finite
        cum = w.cumsum(1)
        total = cum[:, -1:]
        out = []
        for q in qs:
            target = (q * total.double()).ceil().clamp(min=1).to(torch.int64)
            idx = torch.searchsorted(cum, target).clamp(max=cum.shape[1] - 1)
            x = self.values.gather(1, idx).squeeze(1).double()
            x[total.squeeze(1) == 0] = float("nan")
            out.append(x.numpy())
        return np.stack(out)


def interval(samples: np.ndarray) -> list[float] | None:
    """The percentile interval of finite bootstrap samples (None if there are none)."""
    samples = np.asarray(samples, dtype=np.float64)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return None
    lo, hi = np.percentile(samples, CI)
    return [round(float(lo), 6), round(float(hi), 6)]
