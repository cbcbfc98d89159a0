"""Paper Fig 4 (docs/methods.md §4.4) on planted-4l: the points the activations pass computes are TransformerLens's
logit attributions, the fitted relation recovers the planted erasure; aligned tokens; the points are checked
against the run's model, roles and settings."""
import json

import numpy as np
import pytest
import torch

from erasure.analysis.fig4 import check_points, fig4_metrics, load_points, position_mask
from erasure.analysis.fig4_points import aligned_tokens, check_start_pos
from erasure.errors import DataError, ParamError
from erasure.mechanism.names import Component
from erasure.params.sections import Fig4, Stats
from helpers import repo_params


def test_position_sets():
    assert position_mask(5, "all").tolist() == [True] * 5
    assert position_mask(5, "no_bos").tolist() == [False, True, True, True, True]
    assert position_mask(5, "no_bos_no_last").tolist() == [False, True, True, True, False]


# ------------------------------------------------------------------------------------------------------
# the planted model: the Fig 4 relation recovers the erasure built into it


def _planted_points(model, truth, out_dir, settings, n_prompts=4, seq_len=64, batch_size=2, roles=None):
    """Fig 4's points for a few prompts, from the activations pass itself (its clean pass and tables); `roles`:
    (writer, erasers) names other than the planted truth's."""
    from erasure.analysis.activations import TablePass, write_meta
    from erasure.analysis.clean_pass import clean_pass
    from erasure.analysis.roles import Roles

    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(3, len(model.tokenizer), (n_prompts, seq_len), generator=gen)
    tokens[:, 0] = model.tokenizer.bos_token_id
    writer_name, eraser_names = roles or (truth.writer, truth.erasers)
    writer = Component.parse(writer_name)
    erasers = [Component.parse(e) for e in eraser_names]
    tables = TablePass(model, Roles(writer, erasers), n_prompts, seq_len, out_dir, n_prompts, settings)
    clean_pass(model, tokens, batch_size, [tables], desc="test")
    write_meta(out_dir, tables.finish(model.tokenizer) | {"model": "planted-4l"})
    points, meta = load_points(out_dir)
    return points, meta, writer, erasers, tokens


def _settings(**fig4):
    return Fig4.model_validate({**repo_params()["fig4"], "code_variant": {"n_prompts": 2, "start_pos": 32}} | fig4)


def _stats():
    return Stats.model_validate({**repo_params()["stats"], "n_bootstrap": 200})


def test_fig4_recovers_planted_erasure(planted, tmp_path):
    model, truth = planted
    settings = _settings(n_prompts=30, positions="all")  # what the asserts below assume, whatever is applied
    stats = _stats()
    points, meta, writer, erasers, _ = _planted_points(model, truth, tmp_path, settings)
    check_points(points, meta, "planted-4l", writer, erasers, settings)
    result = fig4_metrics(points, meta, settings, stats, "planted-4l", writer, erasers)
    m = result.metrics
    assert set(m) == {"model", "writer", "erasers", "roles_source", "roles_note", "applicable", "reason",
                      "parts_not_applicable", "bootstrap", "paper", "full_erasers", "code_variant"}
    assert m["applicable"] and m["parts_not_applicable"] == {} and m["roles_source"] == "params"
    assert m["bootstrap"] == {"level": stats.level, "n_draws": 200, "seed": stats.bootstrap_seed, "unit": "prompt"}
    fit_keys = {f"{k}{s}" for k in ("r", "slope", "intercept") for s in ("", "_low", "_high")}
    assert set(m["paper"]) == fit_keys | {"n_points", "n_prompts", "positions"}
    assert set(m["full_erasers"]) == fit_keys
    assert set(m["code_variant"]) == {"r", "slope", "intercept", "n_points", "n_prompts", "start_pos"}
    paper = m["paper"]
    assert paper["n_points"] == 4 * 64 and paper["n_prompts"] == 4 and paper["positions"] == "all"
    # planted: y = -sum f_h (sigma_ref/sigma_2) x; tolerances and their reasons come with the planted truth
    assert paper["slope"] == pytest.approx(-truth.total_erasure, abs=truth.tolerances["dla_slope"])
    assert paper["r"] == pytest.approx(-1.0, abs=truth.tolerances["dla_r"])
    assert abs(paper["intercept"]) < 0.05  # no constant offset is planted; DLA values are O(1)
    # the code variant (OV without attention; the erasers attend to their own position) finds the same erasure
    assert m["code_variant"]["slope"] == pytest.approx(-truth.total_erasure, abs=truth.tolerances["dla_slope"])
    assert m["code_variant"]["n_points"] == 2 * (64 - 1 - 32)  # 2 prompts, sources 32..p-2
    assert paper["slope_low"] <= paper["slope"] <= paper["slope_high"]
    json.dumps(m)  # JSON-ready


def test_fig4_points_are_transformer_lens_logit_attributions(planted, tmp_path):
    """The writer's points equal TransformerLens's own logit attribution of the writer's output (its cache's
    stack_head_results + logit_attrs) on the clean top-2 tokens; the erasers' points that of the erasers' summed
    output. Tolerance: float32 sums over d_model in another order (about 1e-6 relative)."""
    model, truth = planted
    points, meta, writer, erasers, tokens = _planted_points(model, truth, tmp_path, _settings(), n_prompts=2)
    logits, cache = model.run_with_cache(tokens)
    top2 = logits.topk(2, dim=-1).indices
    heads, labels = cache.stack_head_results(layer=-1, return_labels=True)
    attrs = cache.logit_attrs(heads, tokens=top2[..., 0], incorrect_tokens=top2[..., 1])
    b_O = {l: model.blocks[l].attn.b_O for l in range(model.cfg.n_layers)}  # planted: 0, as in our outputs
    assert all(float(b.abs().max()) == 0 for b in b_O.values())
    expect_writer = attrs[labels.index(writer.name)]
    expect_erasers = sum(attrs[labels.index(e.name)] for e in erasers)
    torch.testing.assert_close(torch.from_numpy(points["writer"]), expect_writer, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(torch.from_numpy(points["erasers"]), expect_erasers, atol=1e-4, rtol=1e-4)


def test_aligned_tokens_are_the_top_mean_dla(planted):
    model, truth = planted
    mean = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    top = aligned_tokens(mean, model.W_U.detach(), model.tokenizer, k=5)
    W_c = model.W_U - model.W_U.mean(-1, keepdim=True)
    scores = mean @ W_c
    assert [t["id"] for t in top] == torch.topk(scores, 5).indices.tolist()
    assert all(isinstance(t["token"], str) for t in top)
    assert top[0]["score"] == pytest.approx(float(scores.max()), rel=1e-5)


def test_check_points_rejects_other_model_roles_or_settings(planted, tmp_path):
    model, truth = planted
    settings = _settings()
    points, meta, writer, erasers, _ = _planted_points(model, truth, tmp_path, settings, n_prompts=2, seq_len=40)
    with pytest.raises(DataError, match="computed for model 'gelu-4l'.*re-run"):
        check_points(points, meta.model_copy(update={"model": "gelu-4l"}), "planted-4l", writer, erasers, settings)
    with pytest.raises(DataError, match="another writer/eraser set"):
        check_points(points, meta, "planted-4l", writer, erasers[:-1], settings)
    with pytest.raises(DataError, match="fig4.code_variant"):
        check_points(points, meta, "planted-4l", writer, erasers, _settings(aligned_top_k=3))
    check_points(points, meta, "planted-4l", writer, erasers, settings)


@pytest.mark.parametrize("key, value", [("vcomp", float("nan")), ("code_y", float("inf"))])
def test_check_points_refuses_nan_and_inf(planted, tmp_path, key, value):
    """A non-finite point would leave the fit silently (numpy drops nothing, but r becomes nan)."""
    model, truth = planted
    settings = _settings()
    points, meta, writer, erasers, _ = _planted_points(model, truth, tmp_path, settings, n_prompts=2, seq_len=40)
    points = {**points, key: points[key].copy()}
    points[key].reshape(-1)[3] = value
    with pytest.raises(DataError, match=f"fig4_points.npz: {key} holds 1 NaN/inf values"):
        check_points(points, meta, "planted-4l", writer, erasers, settings)


def test_a_code_variant_start_beyond_the_prompts_is_one_line_before_any_pass():
    """The activations stage checks it before loading the model (stages/activations.py)."""
    with pytest.raises(ParamError, match=r"^fig4\.code_variant\.start_pos = 39 is not allowed: must be at most "
                                         r"seq_len - 2 = 38 \(the prompts' seq_len\)$"):
        check_start_pos(39, 40)


def test_without_erasers_nothing_is_patched_and_fig4_does_not_apply(planted, tmp_path):
    """An MLP writer with no erasers: the patched tables equal the clean ones bit for bit (no patch ran), the
    erasers' points are zero, and Fig 4 records that it does not apply and why, with no fit."""
    model, truth = planted
    settings = _settings(n_prompts=4)
    points, meta, writer, erasers, _ = _planted_points(model, truth, tmp_path, settings, roles=("MLP1", []))
    assert meta.patch_layers == [] and meta.roles_source == "params" and not meta.fig4.code_variant.has_heads
    resid, comps = np.load(tmp_path / "resid_pr.npy"), np.load(tmp_path / "component_pr.npy")
    assert np.array_equal(resid[:, :, 0], resid[:, :, 1]) and np.array_equal(comps[:, :, 0], comps[:, :, 1])
    assert not points["vcomp"].any() and not points["erasers"].any() and points["writer"].any()
    check_points(points, meta, "planted-4l", writer, erasers, settings)
    m = fig4_metrics(points, meta, settings, _stats(), "planted-4l", writer, erasers).metrics
    assert not m["applicable"] and m["reason"].startswith("no erasers (the model's entry names none)")
    assert m["paper"] is None and m["full_erasers"] is None and m["code_variant"] is None
