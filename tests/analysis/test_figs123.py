"""Figs 1-3 metrics carry prompt-bootstrap intervals beside every claimed statistic; the derived quantities
(the V-composition share, the erasure in percent) are drawn on the same resampled prompt sets as their medians."""
import numpy as np
import pytest

from erasure.analysis.figs123 import fig1_metrics, fig2_metrics, fig3_metrics
from erasure.analysis.tables import ActivationTables
from erasure.mechanism.bootstrap import prompt_draws
from erasure.mechanism.names import all_components, checkpoint_names
from erasure.params.sections import Stats
from erasure.schemas import ActivationMeta

N, P = 9, 16
STATS = Stats.model_validate({"headline": "all", "n_bootstrap": 100, "bootstrap_seed": 3, "level": 0.9})


def _tables(erasers=("L2H4", "L2H5"), note=None) -> ActivationTables:
    rng = np.random.default_rng(0)
    checkpoints = checkpoint_names(4)
    components = [c.name for c in all_components(4, 8)]
    resid = rng.normal(size=(N, P, 2, len(checkpoints))) * 0.1 + rng.normal(size=(N, 1, 1, 1)) * 0.05
    resid[..., checkpoints.index("resid_post1")] += 1.0
    resid[:, :, 0, checkpoints.index("resid_mid2")] += 0.1
    resid[:, :, 1, checkpoints.index("resid_mid2")] += 0.9
    comps = rng.normal(size=(N, P, 2, len(components))) * 0.05
    comps[:, :, 0, components.index("L2H5")] -= 0.3
    if not erasers:  # nothing patched: the patched run is the clean run
        resid[:, :, 1], comps[:, :, 1] = resid[:, :, 0], comps[:, :, 0]
    meta = {"model": "planted-4l", "writer": "L0H2", "erasers": list(erasers), "n_prompts": N, "seq_len": P,
            "roles_source": "fallback" if note else "params", "roles_note": note,
            "runs": ["clean", "patched"], "checkpoints": checkpoints, "components": components,
            "patch_layers": [2] if erasers else []}
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


def test_every_figure_applies_with_erasers():
    tables = _tables()
    for m in (fig1_metrics(tables, STATS), fig2_metrics(tables, 0.02, STATS), fig3_metrics(tables, STATS)):
        assert m["applicable"] and m["reason"] is None and m["parts_not_applicable"] == {}


def test_without_erasers_each_figure_says_what_does_not_apply_and_why(tmp_path):
    """No erasers (a fallback writer): Fig 1's PR curve and Fig 2's components still apply; the V-composition
    share, the eraser sum and all of Fig 3 (the heads of the patched layer) do not, each with the reason."""
    note = "no relevant writer has an eraser (discovery.eraser_threshold); the figures follow the top relevant writer L0H2"
    tables = _tables(erasers=(), note=note)
    f1, f2, f3 = fig1_metrics(tables, STATS), fig2_metrics(tables, 0.02, STATS), fig3_metrics(tables, STATS)
    assert f1["applicable"] and f1["vcomp_share"] is None and set(f1["parts_not_applicable"]) == {"vcomp_share"}
    assert note in f1["parts_not_applicable"]["vcomp_share"] and f1["roles_source"] == "fallback"
    assert f1["checkpoints"]["resid_post1"]["clean"]["all"]["median"] > 0.5  # the writer's curve is still there
    assert f2["applicable"] and f2["eraser_sum"] is None and f2["erasure_total_pct"] is None
    assert set(f2["parts_not_applicable"]) == {"eraser_sum", "erasure_total_pct"} and len(f2["components"]) == 35
    assert not f3["applicable"] and f3["heads"] == {} and note in f3["reason"]
    from erasure.plotting.data import FIG3_FIELDS, fig3_rows
    from erasure.plotting.figs123 import fig1, fig2, fig3
    fig1(f1, "all", ["25-75"], tmp_path / "f1.png", 60)
    fig2(f2, "all", ["25-75"], "all", tmp_path / "f2.png", 60)
    fig3(f3, "all", ["25-75"], tmp_path / "f3.png", 60)
    assert all((tmp_path / f"f{i}.png").stat().st_size > 1000 for i in (1, 2, 3))
    assert fig3_rows(f3, "all") == [] and FIG3_FIELDS[:4] == ["bar", "head", "run", "eraser"]
