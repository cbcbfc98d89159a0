"""DLA (methods.md §3) and paper Fig 4: equals TransformerLens' logit_attrs; recovers the planted erasure."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import tiny_model

from erasure.config import Component, DataError, ParamError, load_params
from erasure.dla import (
    aligned_tokens,
    bootstrap_fit,
    centres,
    check_cache,
    dla,
    fig4_metrics,
    fig4_settings,
    fit_line,
    position_mask,
    top2_dla,
)

# float32: DLA values are O(0.1-10) sums over d_model products; TL and we differ only in summation order and
# in z @ W_O vs hook_result (einsum), i.e. a few ulps of the largest term. 1e-5 absolute + 1e-4 relative covers
# that with ~100x margin (observed ~5e-8 on the tiny model).
ATOL, RTOL = 1e-5, 1e-4
PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


@pytest.fixture(scope="module")
def planted():
    from erasure.planted import build_planted_model, planted_truth

    return build_planted_model(seed=0), planted_truth()


def _tl_logit_attrs(model, tokens):
    """TransformerLens' own DLA of every head on the top-2 logit difference, and its cache."""
    model.cfg.use_attn_result = True
    try:
        logits, cache = model.run_with_cache(tokens)
    finally:
        model.cfg.use_attn_result = False
    top2 = logits.topk(2, dim=-1).indices
    stack, labels = cache.stack_head_results(layer=-1, return_labels=True)
    attrs = cache.logit_attrs(stack, tokens=top2[..., 0], incorrect_tokens=top2[..., 1])
    return attrs, labels, cache, top2


@pytest.mark.parametrize("norm,kv_heads", [("LNPre", None), ("RMSPre", 2)])
def test_dla_equals_transformer_lens_logit_attrs(norm, kv_heads):
    """Our ((o - mean)/sigma_f) . (W_U[t1] - W_U[t2]) == ActivationCache.logit_attrs(stack_head_results,
    tokens=t1, incorrect_tokens=t2) (cached ln_final scale, LN centring only for LN models), every head."""
    model = tiny_model(norm, kv_heads)
    tokens = torch.randint(0, 100, (3, 24), generator=torch.Generator().manual_seed(0))
    attrs, labels, cache, top2 = _tl_logit_attrs(model, tokens)
    W_U = model.W_U.detach()
    for i, label in enumerate(labels):
        comp = Component.parse(label)
        z = cache[f"blocks.{comp.layer}.attn.hook_z"][:, :, comp.head]
        out = z @ model.blocks[comp.layer].attn.W_O[comp.head]  # our head output (no b_O), as in the DLA cache
        ours = top2_dla(out, cache["ln_final.hook_scale"].squeeze(-1), W_U, top2, centre=centres(model))
        torch.testing.assert_close(ours, attrs[i], atol=ATOL, rtol=RTOL)


def test_dla_equals_logit_attrs_on_planted(planted):
    model, truth = planted
    tokens = torch.randint(3, len(model.tokenizer), (2, 32), generator=torch.Generator().manual_seed(0))
    tokens[:, 0] = model.tokenizer.bos_token_id
    attrs, labels, cache, top2 = _tl_logit_attrs(model, tokens)
    w = Component.parse(truth.writer)
    o = cache[f"blocks.{w.layer}.attn.hook_z"][:, :, w.head] @ model.blocks[w.layer].attn.W_O[w.head]
    ours = top2_dla(o, cache["ln_final.hook_scale"].squeeze(-1), model.W_U.detach(), top2)
    torch.testing.assert_close(ours, attrs[labels.index(truth.writer)], atol=ATOL, rtol=RTOL)


def test_dla_accepts_scale_with_or_without_singleton():
    v, u = torch.randn(2, 5, 8), torch.randn(8)
    s = torch.rand(2, 5) + 0.5
    torch.testing.assert_close(dla(v, s, u), dla(v, s.unsqueeze(-1), u))
    torch.testing.assert_close(dla(v + 3.0, s, u), dla(v, s, u))  # LN centring removes a constant shift


def test_position_sets():
    assert position_mask(5, "all").tolist() == [True] * 5
    assert position_mask(5, "no_bos").tolist() == [False, True, True, True, True]
    assert position_mask(5, "no_bos_no_last").tolist() == [False, True, True, True, False]
    with pytest.raises(ParamError, match="fig4.positions"):
        position_mask(5, "middle")


def test_fit_and_prompt_bootstrap():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 200))
    y = -0.6 * x + 0.01 + 0.5 * rng.normal(size=x.shape)
    fit = fit_line(x, y)
    assert fit["slope"] == pytest.approx(-0.6, abs=0.02) and fit["r"] < -0.7
    ci = bootstrap_fit(x, y, 500, seed=1)
    assert ci == bootstrap_fit(x, y, 500, seed=1)  # seeded
    for key in ("r", "slope", "intercept"):
        lo, hi = ci[f"{key}_ci95"]
        assert lo <= fit[key] <= hi
    assert ci["slope_ci95"][0] < -0.6 < ci["slope_ci95"][1]


# ------------------------------------------------------------------------------------------------------
# the planted model: the Fig 4 relation recovers the erasure built into it


def _planted_cache(model, truth, n_prompts=4, seq_len=64):
    """A dla_cache-like dict for a few prompts, computed with the lead's activation pass."""
    from erasure.activations import ActivationPass

    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(3, len(model.tokenizer), (n_prompts, seq_len), generator=gen)
    tokens[:, 0] = model.tokenizer.bos_token_id
    writer = Component.parse(truth.writer)
    erasers = [Component.parse(e) for e in truth.erasers]
    out = ActivationPass(model, writer, erasers).batch(tokens, keep_vectors=True)
    o, sf = out["writer_out"], out["scale_final"]
    out["writer_over_scale_mean"] = ((o - o.mean(-1, keepdim=True)) / sf.unsqueeze(-1)).mean((0, 1))
    return out, writer, erasers


def _params(tmp_path, edit=lambda raw: None, model="planted-4l"):
    raw = yaml.safe_load(PARAMS.read_text())
    raw["model"] = model
    edit(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_params(path)


def test_fig4_recovers_planted_erasure(planted, tmp_path):
    model, truth = planted
    cache, writer, erasers = _planted_cache(model, truth)
    params = _params(tmp_path, lambda raw: raw["fig4"].update(n_bootstrap=200, code_variant={"n_prompts": 2, "start_pos": 32}))
    result = fig4_metrics(cache, model, params, fig4_settings(params))
    m = result.metrics
    assert set(m) == {"model", "writer", "erasers", "paper", "full_erasers", "code_variant"}
    assert set(m["paper"]) == {"r", "slope", "intercept", "r_ci95", "slope_ci95", "intercept_ci95", "n_points",
                               "n_prompts", "positions"}
    assert set(m["full_erasers"]) == {"r", "slope", "intercept"}
    assert set(m["code_variant"]) == {"r", "slope", "intercept", "n_points", "n_prompts", "start_pos"}
    paper = m["paper"]
    assert paper["n_points"] == 4 * 64 and paper["n_prompts"] == 4 and paper["positions"] == "all"
    # planted: y = -sum f_h (sigma_ref/sigma_2) x; tolerances and their reasons come with the planted truth
    assert paper["slope"] == pytest.approx(-truth.total_erasure, abs=truth.tolerances["dla_slope"])
    assert paper["r"] == pytest.approx(-1.0, abs=truth.tolerances["dla_r"])
    assert abs(paper["intercept"]) < 0.05  # no constant offset is planted; DLA values are O(1)
    # the code variant (OV without attention; the erasers attend to their own position) finds the same erasure
    assert m["code_variant"]["slope"] == pytest.approx(-truth.total_erasure, abs=truth.tolerances["dla_slope"])
    assert paper["slope_ci95"][0] <= paper["slope"] <= paper["slope_ci95"][1]
    json.dumps(m)  # JSON-ready


def test_aligned_tokens_are_the_top_mean_dla(planted):
    model, truth = planted
    mean = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    top = aligned_tokens(mean, model.W_U.detach(), model.tokenizer, k=5)
    W_c = model.W_U - model.W_U.mean(-1, keepdim=True)
    scores = mean @ W_c
    assert [t["id"] for t in top] == torch.topk(scores, 5).indices.tolist()
    assert all(isinstance(t["token"], str) for t in top)
    assert top[0]["score"] == pytest.approx(float(scores.max()), rel=1e-5)


def test_check_cache_rejects_other_model(planted, tmp_path):
    model, truth = planted
    cache, writer, erasers = _planted_cache(model, truth, n_prompts=2, seq_len=40)
    params = _params(tmp_path)
    meta = {"model": "gelu-4l", "writer": writer.name, "erasers": [e.name for e in erasers]}
    with pytest.raises(DataError, match="rerun"):
        check_cache(cache, meta, params)
    check_cache(cache, {**meta, "model": "planted-4l"}, params)


@pytest.mark.parametrize(
    "key,value,param",
    [("n_prompts", 0, "fig4.n_prompts"), ("positions", "middle", "fig4.positions"),
     ("n_bootstrap", 0, "fig4.n_bootstrap"), ("code_variant", {"n_prompts": 0, "start_pos": 32}, "fig4.code_variant.n_prompts")],
)
def test_bad_fig4_params_name_the_param(tmp_path, key, value, param):
    params = _params(tmp_path, lambda raw: raw["fig4"].update({key: value}))
    with pytest.raises(ParamError, match=param.replace(".", r"\.")):
        fig4_settings(params)
