"""Figs 1-3 metrics carry prompt-bootstrap intervals beside every claimed statistic; the derived quantities
(the V-composition share, the erasure in percent) are drawn on the same resampled prompt sets as their medians."""
import numpy as np
import pytest

from erasure.analysis.figs123 import fig1_metrics, fig2_metrics, fig3_metrics
from erasure.analysis.tables import ActivationMeta, ActivationTables
from erasure.mechanism.bootstrap import prompt_draws
from erasure.mechanism.names import all_components, checkpoint_names
from erasure.params.sections import Stats

N, P = 9, 16
STATS = Stats.model_validate({"headline": "all", "n_bootstrap": 100, "bootstrap_seed": 3, "level": 0.9})


def _tables() -> ActivationTables:
    rng = np.random.default_rng(0)
    checkpoints = checkpoint_names(4)
    components = [c.name for c in all_components(4, 8)]
    resid = rng.normal(size=(N, P, 2, len(checkpoints))) * 0.1 + rng.normal(size=(N, 1, 1, 1)) * 0.05
    resid[..., checkpoints.index("resid_post1")] += 1.0
    resid[:, :, 0, checkpoints.index("resid_mid2")] += 0.1
    resid[:, :, 1, checkpoints.index("resid_mid2")] += 0.9
    comps = rng.normal(size=(N, P, 2, len(components))) * 0.05
    comps[:, :, 0, components.index("L2H5")] -= 0.3
    meta = {"model": "planted-4l", "writer": "L0H2", "erasers": ["L2H4", "L2H5"], "n_prompts": N, "seq_len": P,
            "runs": ["clean", "patched"], "checkpoints": checkpoints, "components": components, "patch_layers": [2]}
    return ActivationTables(ActivationMeta.model_validate(meta), resid.astype(np.float32), comps.astype(np.float32))


def _median_draws(values: np.ndarray) -> np.ndarray:
    """The definition: every resampled prompt set's pooled median."""
    return np.array([np.median(np.repeat(values.astype(np.float64), c, axis=0)) for c in
                     prompt_draws(N, STATS.n_bootstrap, STATS.bootstrap_seed)])


def _interval(draws: np.ndarray) -> tuple[float, float]:
    return tuple(np.percentile(draws, [5, 95]))  # level 0.9


def test_fig1_share_interval_is_the_share_of_each_draw():
    tables = _tables()
    m = fig1_metrics(tables, STATS)
    assert m["bootstrap"] == {"level": 0.9, "n_draws": 100, "seed": 3, "unit": "prompt"}
    mid2 = m["checkpoints"]["resid_mid2"]["clean"]["all"]
    assert mid2["median_low"] <= mid2["median"] <= mid2["median_high"]
    patched, clean, entering = (_median_draws(tables.resid(c, run)) for c, run in
                                (("resid_mid2", "patched"), ("resid_mid2", "clean"), ("resid_post1", "clean")))
    # 1e-12: interpolating percentiles of float64 ratios; 50 * (1 - 0.9) is not exactly 5 in binary
    assert (m["vcomp_share"]["all_low"], m["vcomp_share"]["all_high"]) == pytest.approx(
        _interval((patched - clean) / (entering - clean)), abs=1e-12)
    assert m["vcomp_share"]["all_low"] < m["vcomp_share"]["all"] < m["vcomp_share"]["all_high"]


def test_fig2_total_erasure_interval_mirrors_the_summed_median():
    tables = _tables()
    m = fig2_metrics(tables, 0.02, STATS)
    total = sum(tables.component(e, "clean").astype(np.float64) for e in ("L2H4", "L2H5"))
    lo, hi = _interval(_median_draws(total))
    s = m["eraser_sum"]["all"]
    assert (s["median_low"], s["median_high"]) == pytest.approx((lo, hi), abs=1e-12)
    pct = m["erasure_total_pct"]
    assert (pct["all_low"], pct["all_high"]) == pytest.approx((-100 * hi, -100 * lo), abs=1e-10)
    assert m["negative_heads"] == ["L2H5"]


def test_fig3_every_stats_dict_has_its_intervals():
    m = fig3_metrics(_tables(), STATS)
    for head in m["heads"].values():
        for run in head.values():
            for pool in run.values():
                assert {f"{k}{s}" for k in ("median", "q25", "q75") for s in ("_low", "_high")} <= set(pool)
