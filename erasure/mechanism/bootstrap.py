"""Percentile-bootstrap intervals that resample PROMPTS, the sampling unit (positions of one prompt are not
independent): the one engine of every interval, the claims', discovery's and the audit's (docs/methods.md §3,
"Intervals").

One draw = n prompt indices drawn with replacement, held as multiplicities (a (draws, n) count matrix), drawn as
`scipy.stats.bootstrap` draws them (`Generator.integers(0, n, (draws, n))`), so the same seed gives the same
resamples. A statistic is recomputed exactly on every resampled prompt set; the interval is the central `level`
percentile range of the draws (linear interpolation, as numpy and scipy). One level (`stats.level`), one count and
seed (`stats.n_bootstrap`, `stats.bootstrap_seed`), one key convention (`<key>_low`, `<key>_high`).

Pooled quantiles are the costly case (300 prompts x 1024 positions = 307,200 values per series). Instead of
re-pooling every draw, the values are sorted once with their prompt ids; a draw's k-th pooled value is then found
by a weighted cumulative count: the sorted values are cut into segments, every draw's count below each segment near
the full-sample quantile is one matrix product, and the rank is then found inside a single segment. The result is
exact (not a histogram approximation, `tests/mechanism/test_bootstrap.py`) and costs about one sort per series plus
a few passes over (draws x segment) arrays per quantile: ~0.1 s per series at 300 x 1024 with 1000 draws.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from erasure.mechanism.names import INTERVAL_SUFFIXES
from erasure.mechanism.stats import QUANTILES, summarize

if TYPE_CHECKING:
    from erasure.params.sections import Stats

INTERVAL_STATS = ("median", "q25", "q75")  # what the paper's claims are stated in (the 12.5/87.5 band is only drawn)


def prompt_draws(n: int, n_draws: int, seed: int) -> np.ndarray:
    """(n_draws, n) int64 multiplicities of n prompts resampled with replacement (scipy.stats.bootstrap's draws)."""
    idx = np.random.default_rng(seed).integers(0, n, (n_draws, n))
    flat = (idx + n * np.arange(n_draws)[:, None]).ravel()
    return np.bincount(flat, minlength=n_draws * n).reshape(n_draws, n)


def percentile_interval(draws: np.ndarray, level: float) -> tuple[float | None, float | None]:
    """Central `level` percentile interval of the draws. Undefined draws (NaN or inf: an r or a ratio with a zero
    denominator, a prompt draw without a finite value) are dropped; with none left the interval is undefined:
    (None, None), written as null."""
    draws = np.asarray(draws, np.float64)
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return None, None
    lo, hi = np.percentile(draws, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def bootstrap_record(level: float, n_draws: int, seed: int, unit: str) -> dict:
    """A metrics file's `bootstrap` key: the intervals' level, draws, seed and what was resampled."""
    return {"level": level, "n_draws": n_draws, "seed": seed, "unit": unit}


def add_interval(target: dict, name: str, draws: np.ndarray, level: float) -> None:
    """target[name + '_low'], target[name + '_high'] = the percentile interval of the draws."""
    lo, hi = percentile_interval(draws, level)
    target[name + INTERVAL_SUFFIXES[0]], target[name + INTERVAL_SUFFIXES[1]] = lo, hi


@dataclass(frozen=True)
class PromptBootstrap:
    """The resampled prompt sets shared by every statistic of one stage (so derived quantities, such as a ratio
    of medians, are computed draw by draw on the same resample)."""

    counts: np.ndarray  # (draws, n_prompts) multiplicities
    level: float
    seed: int

    @classmethod
    def create(cls, n_prompts: int, n_draws: int, seed: int, level: float) -> PromptBootstrap:
        return cls(prompt_draws(n_prompts, n_draws, seed), level, seed)

    @classmethod
    def of(cls, n_prompts: int, stats: Stats) -> PromptBootstrap:
        """The resamples of n prompts that params' `stats` (count, seed, level) prescribe for every interval."""
        return cls.create(n_prompts, stats.n_bootstrap, stats.bootstrap_seed, stats.level)

    def by_prompt(self, per_token: np.ndarray) -> np.ndarray:
        """(tokens, series) values, prompt-major with the same positions per prompt, as (prompt, position, series)."""
        values = np.asarray(per_token)
        return values.reshape(self.counts.shape[1], -1, values.shape[-1])

    def record(self) -> dict:
        """How the intervals of a metrics file were drawn (its `bootstrap` key)."""
        return bootstrap_record(self.level, int(self.counts.shape[0]), self.seed, "prompt")

    def interval(self, draws: np.ndarray) -> tuple[float, float]:
        return percentile_interval(draws, self.level)

    def quantiles(self, per_prompt: np.ndarray, qs: list[float]) -> np.ndarray:
        """(len(qs), draws): pooled quantiles (fractions) of a (prompt, ...) array on every resampled prompt set."""
        return pooled_quantile_draws(per_prompt, self.counts, qs)

    def series_quantiles(self, per_prompt: np.ndarray, qs: list[float]) -> np.ndarray:
        """(len(qs), draws, series): `quantiles` of each series of a (prompt, ..., series) array, pooled over every
        axis but the first and the last (discovery: every writer's persistence at every checkpoint at once)."""
        values = np.asarray(per_prompt)
        out = np.empty((len(qs), len(self.counts), values.shape[-1]))
        for s in range(values.shape[-1]):
            out[:, :, s] = pooled_quantile_draws(values[..., s], self.counts, qs)
        return out


def add_quantile_intervals(target: dict, per_prompt: np.ndarray, boot: PromptBootstrap) -> dict[str, np.ndarray]:
    """Add `<stat>_low/_high` of every `INTERVAL_STATS` quantile of the pooled (prompt, ...) values to `target`;
    returns the draws by statistic."""
    draws = dict(zip(INTERVAL_STATS, boot.quantiles(per_prompt, [QUANTILES[k] / 100 for k in INTERVAL_STATS])))
    for name, d in draws.items():
        add_interval(target, name, d, boot.level)
    return draws


def summarize_pools_with_intervals(
    per_token: np.ndarray, boot: PromptBootstrap
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, np.ndarray]]]:
    """stats.summarize_pools of a (prompt, position) array (all positions; without position 0, BOS), each pool
    with the intervals of `INTERVAL_STATS`; plus each pool's draws (for quantities derived from them)."""
    per_token = np.asarray(per_token)
    stats, draws = {}, {}
    for pool, values in (("all", per_token), ("no_bos", per_token[:, 1:])):
        stats[pool] = summarize(values)
        draws[pool] = add_quantile_intervals(stats[pool], values, boot)
    return stats, draws


def pooled_quantile_draws(per_prompt: np.ndarray, counts: np.ndarray, qs: list[float]) -> np.ndarray:
    """Exact pooled quantiles (numpy's linear interpolation; non-finite values dropped) of the values of a
    (n_prompts, ...) array, with prompt i counted counts[b, i] times in draw b. Returns (len(qs), draws)."""
    values = np.asarray(per_prompt).reshape(per_prompt.shape[0], -1)
    n = values.shape[0]
    if counts.shape[1] != n:
        raise ValueError(f"counts are for {counts.shape[1]} prompts, the values for {n}")
    flat = values.ravel()
    keep = np.flatnonzero(np.isfinite(flat))
    out = np.full((len(qs), counts.shape[0]), np.nan)
    if keep.size == 0:
        return out
    order = keep[np.argsort(flat[keep])]  # ties hold equal values, so their order does not matter
    # segments of sqrt(size) / 4 values: fastest of /1../32 measured at 32 x 1024 and 300 x 1024 (window matrix
    # product vs per-segment cumulative counts)
    seg = max(1, int(np.sqrt(order.size) / 4))
    pool = _RankedPool(flat[order].astype(np.float64), order // values.shape[1], counts, seg)
    for qi, q in enumerate(qs):
        h = (pool.total - 1) * q
        j = np.floor(h).astype(np.int64)
        g = h - j
        lo_val, hi_val = pool.values_at(j, np.minimum(j + 1, pool.total - 1), q)
        diff = hi_val - lo_val  # numpy's own interpolation formula (numpy.lib's _lerp), for bit-equal results
        out[qi] = np.where(g >= 0.5, hi_val - diff * (1 - g), lo_val + diff * g)
    out[:, pool.total == 0] = np.nan  # a draw of prompts without a finite value has no quantile
    return out


class _RankedPool:
    """Sorted pooled values with their prompt ids, cut into segments of `seg` values.

    `before[k]` holds each prompt's count of values before segment k, so a draw's count of values before segment k
    is counts[b] @ before[k]. Only the segments around the full-sample quantile are evaluated (a window, widened
    until it holds every draw's ranks); a rank is then found by a search over those segments and a weighted
    cumulative count inside one segment.
    """

    def __init__(self, values: np.ndarray, prompt_ids: np.ndarray, counts: np.ndarray, seg: int):
        n, size = counts.shape[1], values.size
        self.seg, self.n_seg, self.n, self.size = seg, -(-size // seg), n, size
        per_seg = np.bincount((np.arange(size) // seg) * n + prompt_ids, minlength=self.n_seg * n)
        self.before = np.vstack([np.zeros((1, n)), np.cumsum(per_seg.reshape(self.n_seg, n), axis=0)])
        self.weights = counts.astype(np.float64)
        self.total = (self.weights @ self.before[-1]).astype(np.int64)
        # padded by one segment of a weightless extra prompt (id n), so a segment never runs past the end
        self.values = np.concatenate([values, np.full(seg, values[-1])])
        self.prompt_ids = np.concatenate([prompt_ids, np.full(seg, n)])
        self.flat_counts = np.hstack([counts, np.zeros((len(counts), 1), counts.dtype)]).ravel()

    def values_at(self, r1: np.ndarray, r2: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
        """Per draw b, the values of 0-based ranks r1[b] <= r2[b] in its pooled multiset (q: where to look first)."""
        centre = int((self.size - 1) * q) // self.seg
        # first guess: how far the draws' ranks stray from the full-sample quantile, in segments (~1 value per rank)
        stray = np.abs(r1 - self.weights @ self.before[centre]).max()
        half = int(1.25 * stray / self.seg) + 2
        while True:
            ka, kb = max(0, centre - half), min(self.n_seg, centre + half + 1)
            below = self.weights @ self.before[ka : kb + 1].T  # exact: integer counts far below 2**53
            if (ka == 0 or np.all(below[:, 0] <= r1)) and (kb == self.n_seg or np.all(r2 < below[:, -1])):
                break
            half *= 2
        draws = np.arange(len(r1))
        v1, v2, found = self._in_segment_of(draws, below, ka, r1, r2)
        if not found.all():  # r2 lies in a later segment (the segments between hold only undrawn prompts)
            rest = np.flatnonzero(~found)
            v2[rest] = self._in_segment_of(rest, below[rest], ka, r2[rest], r2[rest])[0]
        return v1, v2

    def _in_segment_of(self, draws: np.ndarray, below: np.ndarray, ka: int, r1: np.ndarray, r2: np.ndarray):
        """Values of ranks r1, r2 within the segment holding r1 (and whether r2 was there too)."""
        rows = np.arange(len(draws))
        width = below.shape[1]
        offset = (below[:, -1].max() + 1) * rows
        k = np.searchsorted((below + offset[:, None]).ravel(), r1 + offset, side="right") - width * rows - 1
        k = np.minimum(k, width - 2)
        start = (ka + k) * self.seg
        ids = np.take(self.prompt_ids, start[:, None] + np.arange(self.seg))
        cum = np.cumsum(np.take(self.flat_counts, ids + (draws * (self.n + 1))[:, None]), axis=1)
        base = below[rows, k]
        at1 = (cum <= (r1 - base)[:, None]).sum(1)  # the first position whose cumulative count exceeds the rank
        at2 = (cum <= (r2 - base)[:, None]).sum(1)
        return self.values[start + at1], self.values[start + np.minimum(at2, self.seg - 1)], at2 < self.seg
