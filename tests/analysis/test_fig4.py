"""Paper Fig 4 (docs/methods.md §4.4) on planted-4l: the DLA relation recovers the planted erasure; aligned tokens;
the DLA cache is checked against the run's model and roles."""
import json

import pytest
import torch

from erasure.analysis.fig4 import aligned_tokens, check_cache, fig4_metrics, position_mask
from erasure.analysis.tables import ActivationMeta
from erasure.errors import DataError, ParamError
from erasure.mechanism.names import Component, all_components, checkpoint_names
from erasure.params.sections import Fig4, Stats
from helpers import repo_params


def test_position_sets():
    assert position_mask(5, "all").tolist() == [True] * 5
    assert position_mask(5, "no_bos").tolist() == [False, True, True, True, True]
    assert position_mask(5, "no_bos_no_last").tolist() == [False, True, True, True, False]


# ------------------------------------------------------------------------------------------------------
# the planted model: the Fig 4 relation recovers the erasure built into it


def _planted_cache(model, truth, n_prompts=4, seq_len=64):
    """A dla_cache-like dict for a few prompts, computed with the lead's activation pass."""
    from erasure.analysis.activations import ActivationPass

    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(3, len(model.tokenizer), (n_prompts, seq_len), generator=gen)
    tokens[:, 0] = model.tokenizer.bos_token_id
    writer = Component.parse(truth.writer)
    erasers = [Component.parse(e) for e in truth.erasers]
    out = ActivationPass(model, writer, erasers).batch(tokens, keep_vectors=True)
    o, sf = out["writer_out"], out["scale_final"]
    out["writer_over_scale_mean"] = ((o - o.mean(-1, keepdim=True)) / sf.unsqueeze(-1)).mean((0, 1))
    return out, writer, erasers


def test_fig4_recovers_planted_erasure(planted):
    model, truth = planted
    cache, writer, erasers = _planted_cache(model, truth)
    settings = Fig4.model_validate(
        {**repo_params()["fig4"], "n_prompts": 30, "positions": "all",
         "code_variant": {"n_prompts": 2, "start_pos": 32}})  # what the asserts below assume, whatever is applied
    stats = Stats.model_validate({**repo_params()["stats"], "n_bootstrap": 200})
    result = fig4_metrics(cache, model, settings, stats, "planted-4l", writer, erasers)
    m = result.metrics
    assert set(m) == {"model", "writer", "erasers", "bootstrap", "paper", "full_erasers", "code_variant"}
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
    assert paper["slope_low"] <= paper["slope"] <= paper["slope_high"]
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


def _meta(model_name: str, writer, erasers, n_layers: int = 4, n_heads: int = 8) -> ActivationMeta:
    return ActivationMeta.model_validate({
        "model": model_name, "writer": writer.name, "erasers": [e.name for e in erasers],
        "patch_layers": sorted({e.layer for e in erasers}), "runs": ["clean", "patched"],
        "components": [c.name for c in all_components(n_layers, n_heads)], "checkpoints": checkpoint_names(n_layers),
        "n_prompts": 2, "seq_len": 40})


def test_check_cache_rejects_other_model_or_roles(planted):
    model, truth = planted
    cache, writer, erasers = _planted_cache(model, truth, n_prompts=2, seq_len=40)
    with pytest.raises(DataError, match="computed for model 'gelu-4l'.*re-run"):
        check_cache(cache, _meta("gelu-4l", writer, erasers), "planted-4l", writer, erasers)
    with pytest.raises(DataError, match="another writer/eraser set"):
        check_cache(cache, _meta("planted-4l", writer, erasers), "planted-4l", writer, erasers[:-1])
    check_cache(cache, _meta("planted-4l", writer, erasers), "planted-4l", writer, erasers)


@pytest.mark.parametrize("key, value", [("vcomp_out", float("nan")), ("scale_final", float("inf"))])
def test_check_cache_refuses_nan_and_inf(planted, key, value):
    """A non-finite cache value would leave the fit silently (numpy drops nothing, but r becomes nan)."""
    model, truth = planted
    cache, writer, erasers = _planted_cache(model, truth, n_prompts=2, seq_len=40)
    cache = {**cache, key: cache[key].clone()}
    cache[key].view(-1)[3] = value
    with pytest.raises(DataError, match=f"dla_cache.safetensors: {key} holds 1 NaN/inf values"):
        check_cache(cache, _meta("planted-4l", writer, erasers), "planted-4l", writer, erasers)




def test_a_code_variant_start_beyond_the_prompts_is_one_line_before_any_pass(planted):
    model, truth = planted
    cache, writer, erasers = _planted_cache(model, truth, n_prompts=2, seq_len=40)
    settings = Fig4.model_validate({**repo_params()["fig4"], "code_variant": {"n_prompts": 2, "start_pos": 39}})
    with pytest.raises(ParamError, match=r"^fig4\.code_variant\.start_pos = 39 is not allowed: must be at most "
                                         r"seq_len - 2 = 38 \(the prompts' seq_len\)$"):
        fig4_metrics(cache, model, settings, Stats.model_validate(repo_params()["stats"]), "planted-4l", writer, erasers)
