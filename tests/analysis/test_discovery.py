"""Writer/eraser discovery: params, streaming statistics, and recovery of the planted erasure."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from erasure.analysis.discovery.discover import discover
from erasure.analysis.discovery.layout import Layout, capture_outputs, pair_ratios, persistence
from erasure.analysis.discovery.ranking import bootstrap_ranking, rank_writers, window_series
from erasure.analysis.discovery.scan import Scan
from erasure.mechanism.bootstrap import PromptBootstrap
from erasure.mechanism.histogram import AsinhHistogram
from erasure.params.sections import Discovery, Stats
from erasure.plotting.discovery import plot_atlas, plot_persistence
from helpers import repo_params


def discovery_params(**overrides) -> Discovery:
    """The repository's discovery section with some values changed (validated like params.yaml)."""
    return Discovery.model_validate({**repo_params()["discovery"], **overrides})


STATS = Stats.model_validate({**repo_params()["stats"], "n_bootstrap": 200})  # the intervals' level and seed

ROOT = Path(__file__).resolve().parents[2]


# --- streaming statistics -------------------------------------------------------------------------------------


def test_histogram_quantiles_within_one_bin():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6000, 4, generator=gen) * torch.tensor([0.03, 1.0, 40.0, 1.0]) + torch.tensor([0, 0, 0, -0.2])
    x[::7, 3] = float("nan")  # NaN tokens are skipped, not counted
    h = AsinhHistogram(4, bins=2048, scale=0.01, max_abs=1e4)
    for chunk in x.split(1000):
        h.update(chunk)
    qs = [0.25, 0.5, 0.75]
    est = h.quantiles(qs)
    for s in range(4):
        v = np.sort(x[:, s][~torch.isnan(x[:, s])].numpy())
        assert h.n()[s] == len(v)
        for i, q in enumerate(qs):
            order_stat = v[int(np.ceil(q * len(v))) - 1]
            assert abs(est[i, s] - order_stat) <= h.bin_width(order_stat) * 1.001


def test_pair_ratios_and_persistence_match_direct_sums(tiny):
    model = tiny
    tokens = torch.randint(0, model.cfg.d_vocab, (2, 16), generator=torch.Generator().manual_seed(1))
    layout = Layout(model.cfg.n_layers, model.cfg.n_heads)
    outs, norms, _ = capture_outputs(model, tokens, layout)
    _, cache = model.run_with_cache(tokens)
    from erasure.mechanism.hooks import component_output

    for i, comp in enumerate(layout.components):
        torch.testing.assert_close(outs[:, :, i], component_output(model, cache, comp), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(norms[..., -1], cache["blocks.3.hook_resid_post"].norm(dim=-1))
    flat = outs.reshape(-1, layout.n, model.cfg.d_model)
    ratios = pair_ratios(flat, layout)
    P = persistence(ratios, layout)
    for wname, kname in [("L0H2", "resid_mid2"), ("L1H0", "resid_post3"), ("MLP0", "resid_mid1")]:
        w, k = layout.index(wname), layout.checkpoints.index(kname)
        o = flat[:, w]
        written = o + sum(flat[:, c] for c in range(layout.n) if layout.after[w, c] and layout.own[c] <= k)
        torch.testing.assert_close(P[:, w, k], (written * o).sum(-1) / (o * o).sum(-1), atol=1e-4, rtol=1e-4)
        c = layout.index("L2H1")
        torch.testing.assert_close(ratios[:, w, c], (flat[:, c] * o).sum(-1) / (o * o).sum(-1), atol=1e-5, rtol=1e-4)
    # a component never "reads" a writer of its own attention layer
    assert ratios[:, layout.index("L0H2"), layout.index("L0H3")].abs().max() == 0


# --- the planted model: discovery must re-find the planted writer and erasers exactly ------------------------


@pytest.fixture(scope="module")
def planted_run(planted):
    model, truth = planted
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(3, model.cfg.d_vocab, (4, 128), generator=gen)
    tokens[:, 0] = model.tokenizer.bos_token_id if model.tokenizer is not None else 1
    dp = discovery_params(n_vcomp_prompts=4, top_writers=3, hist_bins=1024)
    found = discover(model, tokens, dp, STATS, 2, "planted-4l", params_writer=truth.writer,
                     params_erasers=sorted(truth.erasers))
    return truth, found.record, found, tokens, dp


def test_planted_writer_and_erasers_recovered_exactly(planted_run):
    truth, result, *_ = planted_run
    assert result["writers"][0]["name"] == truth.writer
    assert result["selected"]["writer"] == truth.writer
    assert result["selected"]["erasers"] == sorted(truth.erasers, key=lambda n: (int(n[1]), int(n[3:])))
    assert result["rediscovered"] is True
    top = result["writers"][0]
    assert top["erasing_layer"] == 2
    assert top["erasure"] == pytest.approx(truth.total_erasure, abs=0.1)
    # unambiguous: the planted writer tops every prompt resample, its interval holds the planted erasure
    assert top["top_frequency"] == 1.0
    assert result["selection_frequency"] == {"top_writer": "L0H2", "top_writer_frequency": 1.0,
                                             "writers": [{"name": "L0H2", "frequency": 1.0}]}
    # the intervals are the one prompt bootstrap's (erasure.mechanism.bootstrap), drawn as stats says
    assert result["bootstrap"] == {"level": STATS.level, "n_draws": 200, "seed": STATS.bootstrap_seed,
                                   "unit": "prompt"}
    lo, hi = top["erasure_low"], top["erasure_high"]
    assert lo <= top["erasure"] <= hi and lo - 0.1 <= truth.total_erasure <= hi + 0.1


def test_planted_eraser_fractions_and_vcomp_dependence(planted_run):
    truth, result, *_ = planted_run
    erasers = {e["name"]: e for e in result["writers"][0]["erasers"]}
    for name, frac in truth.erasers.items():
        assert erasers[name]["median"] == pytest.approx(-frac, abs=0.03)
        assert erasers[name]["clean_median"] == pytest.approx(-frac, abs=0.03)
        assert abs(erasers[name]["patched_median"]) < 0.02  # the planted erasure is all V-composition
        assert erasers[name]["vcomp_share"] > 0.8
    total = result["writers"][0]["eraser_sum"]
    assert total["clean_median"] == pytest.approx(-truth.total_erasure, abs=0.1)
    assert abs(total["patched_median"]) < 0.05
    assert total["vcomp_share_low"] > 0.8  # all V-composition: even the resamples' lower bound
    # the planted erasers are heads: the MLPs take away (almost) nothing of the writer
    split = result["writers"][0]["erased_by"]
    assert split["heads"]["median"] == pytest.approx(truth.total_erasure, abs=0.1)
    assert abs(split["mlps"]["median"]) < 0.05
    for who in ("heads", "mlps"):
        assert split[who]["median_low"] <= split[who]["median"] <= split[who]["median_high"]


def test_vcomp_prompts_kept_from_the_clean_pass_or_run_again_give_the_same_record(planted, planted_run):
    """With too little `compute.memory_gb` the V-comp prompts are run again in the clean pass's batches: the same
    forward passes on the same batches, so the same record to the last bit (CPU, one process)."""
    model, truth = planted
    _, kept, _, tokens, dp = planted_run
    again = discover(model, tokens, dp, STATS, 2, "planted-4l", params_writer=truth.writer,
                     params_erasers=sorted(truth.erasers), keep_subset=False)
    assert again.record == kept


def test_planted_figures_and_json(planted_run, tmp_path):
    import json

    from erasure.analysis.discovery.atlas import load_atlas, write_atlas
    from erasure.analysis.discovery.discover import atlas_of

    _, result, found, *_ = planted_run
    json.dumps(result, allow_nan=False)
    atlas = atlas_of(found)
    write_atlas(atlas, tmp_path / "atlas.npz")
    loaded = load_atlas(tmp_path / "atlas.npz")
    assert loaded.writers == atlas.writers and loaded.components == atlas.components
    np.testing.assert_array_equal(loaded.matrix, atlas.matrix)  # a file round trip: exact
    # the atlas row of the writer: its erasers' medians are the record's (both unrounded until written)
    writer = result["selected"]["writer"]
    row = loaded.matrix[loaded.writers.index(writer)]
    for e in result["writers"][0]["erasers"]:
        assert float(row[loaded.components.index(e["name"])]) == e["median"], (writer, e["name"])
    plot_atlas(loaded, tmp_path / "atlas.png", rows=10, dpi=110)
    plot_persistence(result, loaded.n_layers, tmp_path / "persistence.png", dpi=110)
    assert (tmp_path / "atlas.png").stat().st_size > 10_000
    assert (tmp_path / "persistence.png").stat().st_size > 10_000


# --- the ranking rules on synthetic statistics ---------------------------------------------------------------


def _synthetic_scan(layout, persist_fn, rel_fn, n_tok=2000, keep=None, tokens_per_prompt=100):
    """A Scan whose histograms hold given per-token values (persistence per (writer, checkpoint), rel norm);
    the series `keep` and the rel norms are also kept per token, in prompts of `tokens_per_prompt` tokens."""
    gen = torch.Generator().manual_seed(0)
    hist = dict(bins=1024, scale=0.01, max_abs=1e4)
    pair = AsinhHistogram(len(layout.pair_w), **hist)
    pair.update(torch.zeros(n_tok, len(layout.pair_w)))
    persist = AsinhHistogram(len(layout.ser_w), **hist)
    noise = torch.randn(n_tok, len(layout.ser_w), generator=gen)
    centre = torch.tensor([persist_fn(layout.names[w], int(k)) for w, k in zip(layout.ser_w, layout.ser_k)])
    spread = torch.tensor([0.05 if layout.names[w] != "L0H1" else 2.0 for w in layout.ser_w])
    values = centre + spread * noise
    persist.update(values)
    rel = AsinhHistogram(len(layout.writers), **hist)
    rel_values = torch.tensor([rel_fn(layout.names[w]) for w in layout.writers]).expand(n_tok, -1).clone()
    rel.update(rel_values)
    keep = torch.arange(len(layout.ser_w)) if keep is None else keep
    prompts = torch.arange(n_tok) // tokens_per_prompt
    return Scan(pair, persist, rel, torch.zeros(layout.n, 8), n_tok, values[:, keep], rel_values, prompts)


def test_ranking_rules_on_synthetic_statistics():
    layout = Layout(4, 2)  # L0H0 L0H1 MLP0 L1H0 ...
    ck = layout.checkpoints

    def persist(name, k):
        if name == "L0H0":  # erased to 0.2 at resid_mid2 (then 0.3), consistently: the true writer
            return 1.0 if k < ck.index("resid_mid2") else 0.2 if k == ck.index("resid_mid2") else 0.3
        if name == "L0H1":  # median 0.5 but a huge spread: noise, fails require_consistent
            return 0.5
        if name == "MLP0":  # overshoot: later giants write -3 x its output
            return -3.0
        if name == "L1H0":  # erased more than L0H0 but its output is tiny: fails min_rel_norm
            return 0.0 if k >= ck.index("resid_mid2") else 1.0
        return 1.0

    sc = _synthetic_scan(layout, persist, lambda n: 0.001 if n == "L1H0" else 0.3)
    dp = discovery_params(min_rel_norm=0.02, max_overshoot=0.5, require_consistent=True, horizon_layers="all")
    writers, _ = rank_writers(sc, layout, dp)
    by = {r["name"]: r for r in writers}
    assert writers[0]["name"] == "L0H0" and writers[0]["relevant"]
    assert by["L0H0"]["erasure"] == pytest.approx(0.8, abs=0.01)
    assert by["L0H0"]["erasing_layer"] == 2 and by["L0H0"]["min_checkpoint"] == "resid_mid2"
    assert by["L0H1"]["excluded_by"] == ["require_consistent"]
    assert by["MLP0"]["excluded_by"] == ["max_overshoot"]
    assert by["L1H0"]["excluded_by"] == ["min_rel_norm"]
    # a window of 1 layer hides the erasure in layer 2 from a layer-0 writer
    short, _ = rank_writers(sc, layout, discovery_params(horizon_layers=1))
    assert {r["name"]: r for r in short}["L0H0"]["erasure"] == pytest.approx(0.0, abs=0.01)


def test_bootstrap_ranking_finds_a_clear_writer_every_time_and_a_tie_half_the_time():
    layout = Layout(4, 2)
    ck = layout.checkpoints

    def clear(name, k):  # L0H0 erased to 0.2 from resid_mid2 on; every other writer kept
        return 0.2 if name == "L0H0" and k >= ck.index("resid_mid2") else 1.0

    dp = discovery_params(min_rel_norm=0.02, max_overshoot=0.5, require_consistent=True, horizon_layers="all")
    keep, columns = window_series(layout, dp)
    sc = _synthetic_scan(layout, clear, lambda n: 0.3, keep=keep)
    top, erasure = bootstrap_ranking(sc, layout, dp, columns, PromptBootstrap.create(20, 40, 0, 0.95))
    row = layout.writers.index(layout.index("L0H0"))
    assert (top == row).all()
    assert np.abs(erasure[:, row] - 0.8).max() < 0.02

    def tie(name, k):  # L0H0 and L1H1 erased alike: which one tops a resample is a coin flip
        return 0.5 if name in ("L0H0", "L1H1") and k >= ck.index("resid_post2") else 1.0

    sc = _synthetic_scan(layout, tie, lambda n: 0.3, keep=keep, n_tok=4000)
    top, _ = bootstrap_ranking(sc, layout, dp, columns, PromptBootstrap.create(40, 40, 0, 0.95))
    rows = {layout.writers.index(layout.index(n)) for n in ("L0H0", "L1H1")}
    assert set(top.tolist()) == rows  # both win some resamples, nobody else wins any
