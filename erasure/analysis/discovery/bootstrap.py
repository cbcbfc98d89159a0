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


def prompt_counts(n_prompts: int, n_draws: int, seed: int) -> torch.Tensor:
    """(n_draws, n_prompts) int32: how often each prompt is drawn in each resample."""
    g = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, n_prompts, (n_draws, n_prompts), generator=g)
    counts = torch.zeros(n_draws, n_prompts, dtype=torch.int32)
    counts.scatter_add_(1, picks, torch.ones_like(picks, dtype=torch.int32))
    return counts


class PooledQuantiles:
    """Quantiles of many series over pooled tokens, for any prompt weighting, exactly and fast.

    Each series is sorted once and cut into `GRID` blocks of sorted positions; for every block boundary the number
    of tokens of each prompt below it is kept. A weighting then gives every boundary's cumulative weight by one
    matrix product, the quantile's block by a search among the boundaries, and its exact position by a cumsum
    inside that one block (a few dozen tokens), instead of a cumsum over every token of every series.
    """

    GRID = 64

    def __init__(self, values: torch.Tensor, prompt_of_token: torch.Tensor):
        """values (tokens, series) float32, NaN = no value; prompt_of_token (tokens,) int64."""
        sorted_values, order = torch.sort(values.T.contiguous(), dim=1)  # NaN sort last
        n_series, t = sorted_values.shape
        self.n_prompts = int(prompt_of_token.max()) + 1 if t else 0
        # a token without a value belongs to an extra "prompt" whose weight is always 0
        prompt = torch.where(torch.isfinite(sorted_values), prompt_of_token[order], self.n_prompts)
        grid = max(1, min(self.GRID, t))
        self.bounds = torch.arange(grid + 1) * t // grid  # block g holds sorted positions bounds[g]..bounds[g+1]-1
        block = torch.searchsorted(self.bounds[1:], torch.arange(t), right=True)
        counts = torch.zeros(n_series, grid * (self.n_prompts + 1))
        counts.scatter_add_(1, block * (self.n_prompts + 1) + prompt, torch.ones(n_series, t))
        below = counts.view(n_series, grid, self.n_prompts + 1).cumsum(1)
        self.below = torch.cat([torch.zeros(n_series, 1, self.n_prompts + 1), below], dim=1)  # (s, grid+1, P+1)
        self.values, self.prompt = sorted_values, prompt
        self.width = int((self.bounds[1:] - self.bounds[:-1]).max()) if t else 0

    def quantiles(self, qs: list[float], weights: torch.Tensor) -> np.ndarray:
        """(len(qs), series) quantiles when prompt p counts weights[p] times; NaN for a series without values."""
        w = torch.cat([weights.float(), torch.zeros(1)])  # float32 sums of integer counts: exact below 2^24
        at_bound = self.below @ w  # (s, grid+1) cumulative weight at each block boundary
        total = at_bound[:, -1:]
        offsets = torch.arange(self.width)
        out = []
        for q in qs:
            target = (q * total.double()).ceil().clamp(min=1).float()
            g = (torch.searchsorted(at_bound, target) - 1).clamp(0, len(self.bounds) - 2)  # the target's block
            start, stop = self.bounds[g], self.bounds[g + 1]
            pos = (start + offsets).clamp(max=self.values.shape[1] - 1)
            inside = w[self.prompt.gather(1, pos)] * (start + offsets < stop)
            cum = at_bound.gather(1, g) + inside.cumsum(1)
            k = torch.searchsorted(cum, target).clamp(max=self.width - 1)
            x = self.values.gather(1, start + k).squeeze(1).double()
            x[total.squeeze(1) == 0] = float("nan")
            out.append(x.numpy())
        return np.stack(out)
