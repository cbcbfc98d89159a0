"""The prompt bootstrap (erasure/mechanism/bootstrap.py) against scipy.stats.bootstrap and against re-pooling every
resampled prompt set directly; the intervals that summarize_pools stores beside each statistic."""
import numpy as np
import pytest
from scipy import stats as sps

from erasure.mechanism.bootstrap import (
    INTERVAL_STATS,
    PromptBootstrap,
    pooled_quantile_draws,
    prompt_draws,
    summarize_pools_with_intervals,
)
from erasure.mechanism.names import interval_keys
from erasure.mechanism.stats import summarize, summarize_pools

QS = [0.0, 0.125, 0.25, 0.5, 0.75, 0.875, 1.0]


def _clustered(seed: int, n: int, per: int) -> np.ndarray:
    """Values with a per-prompt offset (as PR values of one prompt share its text), float32 like the tables."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, per)) * rng.uniform(0.1, 2) + rng.normal(size=(n, 1)) * rng.uniform(0, 5)).astype(
        np.float32)


def _repooled(values: np.ndarray, counts: np.ndarray, qs: list[float]) -> np.ndarray:
    """The definition: pool the resampled prompts' finite values and take numpy's percentiles."""
    out = []
    for c in counts:
        v = np.repeat(values.astype(np.float64), c, axis=0).ravel()
        v = v[np.isfinite(v)]
        out.append(np.percentile(v, [100 * q for q in qs]) if v.size else np.full(len(qs), np.nan))
    return np.array(out).T


@pytest.mark.parametrize("seed", range(24))
def test_pooled_quantiles_equal_repooling_every_draw(seed):
    # exact equality: the same order statistics, interpolated with numpy's own formula (so no tolerance)
    n, per = 2 + seed % 11, 1 + (7 * seed) % 37
    values = _clustered(seed, n, per)
    if seed % 3 == 0:
        values = np.round(values, 1)  # ties
    if seed % 5 == 0:
        values[0] = np.nan  # a prompt without a finite value: some draws hold nothing, and give NaN
    if seed % 7 == 0:
        values[np.random.default_rng(seed).random(values.shape) < 0.3] = np.inf
    counts = prompt_draws(n, 40, seed)
    np.testing.assert_array_equal(pooled_quantile_draws(values, counts, QS), _repooled(values, counts, QS))


def test_interval_equals_scipy_bootstrap():
    """scipy.stats.bootstrap (percentile method, same seed) resamples prompts the same way: same draws, same interval."""
    values = _clustered(0, 25, 30)
    n_draws, seed = 300, 11
    boot = PromptBootstrap.create(25, n_draws, seed, 0.95)

    def pooled_median(idx):
        return np.percentile(values[idx].astype(np.float64).ravel(), 50)

    ref = sps.bootstrap((np.arange(25),), pooled_median, vectorized=False, n_resamples=n_draws, method="percentile",
                        confidence_level=0.95, rng=np.random.default_rng(seed))
    draws = boot.quantiles(values, [0.5])[0]
    np.testing.assert_array_equal(draws, ref.bootstrap_distribution)
    # scipy.stats.quantile vs numpy's percentile on the same draws: both linear (type 7); 1e-12 for rounding order
    assert boot.interval(draws) == pytest.approx(
        (ref.confidence_interval.low, ref.confidence_interval.high), abs=1e-12)


def test_draws_are_seeded_and_resample_prompts():
    a, b = prompt_draws(7, 50, 3), prompt_draws(7, 50, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, prompt_draws(7, 50, 4))
    assert a.shape == (50, 7) and (a.sum(1) == 7).all() and (a >= 0).all()


def test_summarize_pools_stores_each_interval_beside_its_statistic():
    values = _clustered(5, 12, 40)
    boot = PromptBootstrap.create(12, 200, 0, 0.9)
    out = summarize_pools_with_intervals(values, boot)[0]
    for pool, pooled in (("all", values), ("no_bos", values[:, 1:])):
        plain = summarize(pooled)
        assert {k: out[pool][k] for k in plain} == plain  # the values themselves do not change
        direct = _repooled(pooled, boot.counts, [0.5, 0.25, 0.75])
        for name, d in zip(INTERVAL_STATS, direct):
            lo, hi = np.percentile(d, [5, 95])  # level 0.9
            # 1e-12: 50 * (1 - 0.9) is 4.999999999999999 in binary, which moves the interpolation in the last bits
            assert (out[pool][f"{name}_low"], out[pool][f"{name}_high"]) == pytest.approx((lo, hi), abs=1e-12)
    assert {pool: {k: v[k] for k in summarize(values)} for pool, v in out.items()} == summarize_pools(values)
    assert interval_keys("metrics/f.json:a.median") == ("metrics/f.json:a.median_low", "metrics/f.json:a.median_high")


def test_series_quantiles_are_each_series_pooled_alone():
    """Discovery's many series at once (prompt, position, series): per series exactly pooled_quantile_draws, i.e.
    the definition (re-pooling every draw)."""
    values = np.stack([_clustered(s, 9, 13) for s in range(4)], axis=-1)
    values[2, :, 1] = np.nan  # a prompt without values in one series only
    boot = PromptBootstrap.create(9, 30, 2, 0.9)
    got = boot.series_quantiles(values, [0.5, 0.75])
    assert got.shape == (2, 30, 4)
    for s in range(4):
        np.testing.assert_array_equal(got[:, :, s], _repooled(values[..., s], boot.counts, [0.5, 0.75]))
