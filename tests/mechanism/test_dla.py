"""DLA (docs/methods.md §3) equals TransformerLens' own logit attribution; the line fit and its prompt bootstrap."""
import numpy as np
import pytest
import torch

from erasure.mechanism.bootstrap import PromptBootstrap
from erasure.mechanism.dla import centres, dla, top2_dla
from erasure.mechanism.linefit import bootstrap_fit, fit_line
from erasure.mechanism.names import Component
from helpers import tiny_model

# float32: DLA values are O(0.1-10) sums over d_model products; TL and we differ only in summation order and
# in z @ W_O vs hook_result (einsum), i.e. a few ulps of the largest term. 1e-5 absolute + 1e-4 relative covers
# that with ~100x margin (observed ~5e-8 on the tiny model).
ATOL, RTOL = 1e-5, 1e-4


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
        ours = top2_dla([out], cache["ln_final.hook_scale"].squeeze(-1), W_U, top2, centre=centres(model))[0]
        torch.testing.assert_close(ours, attrs[i], atol=ATOL, rtol=RTOL)


def test_dla_equals_logit_attrs_on_planted(planted):
    model, truth = planted
    tokens = torch.randint(3, len(model.tokenizer), (2, 32), generator=torch.Generator().manual_seed(0))
    tokens[:, 0] = model.tokenizer.bos_token_id
    attrs, labels, cache, top2 = _tl_logit_attrs(model, tokens)
    w = Component.parse(truth.writer)
    o = cache[f"blocks.{w.layer}.attn.hook_z"][:, :, w.head] @ model.blocks[w.layer].attn.W_O[w.head]
    ours = top2_dla([o], cache["ln_final.hook_scale"].squeeze(-1), model.W_U.detach(), top2)[0]
    torch.testing.assert_close(ours, attrs[labels.index(truth.writer)], atol=ATOL, rtol=RTOL)


def test_dla_accepts_scale_with_or_without_singleton():
    v, u = torch.randn(2, 5, 8), torch.randn(8)
    s = torch.rand(2, 5) + 0.5
    torch.testing.assert_close(dla(v, s, u), dla(v, s.unsqueeze(-1), u))
    torch.testing.assert_close(dla(v + 3.0, s, u), dla(v, s, u))  # LN centring removes a constant shift


def test_fit_and_prompt_bootstrap():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 200))
    y = -0.6 * x + 0.01 + 0.5 * rng.normal(size=x.shape)
    fit = fit_line(x, y)
    assert fit["slope"] == pytest.approx(-0.6, abs=0.02) and fit["r"] < -0.7
    boot = PromptBootstrap.create(30, 500, seed=1, level=0.95)
    ci = bootstrap_fit(x, y, boot)
    assert ci == bootstrap_fit(x, y, PromptBootstrap.create(30, 500, seed=1, level=0.95))  # seeded
    for key in ("r", "slope", "intercept"):
        assert ci[f"{key}_low"] <= fit[key] <= ci[f"{key}_high"]
    assert ci["slope_low"] < -0.6 < ci["slope_high"]
    # every draw refits the resampled prompts' points: the interval equals the percentile interval of direct refits
    # (sufficient statistics vs linregress on the pooled points: float64 sums, so 1e-9)
    direct = [fit_line(np.repeat(x, c, axis=0), np.repeat(y, c, axis=0))["slope"] for c in boot.counts]
    lo, hi = np.percentile(direct, [2.5, 97.5])
    assert ci["slope_low"] == pytest.approx(lo, abs=1e-9) and ci["slope_high"] == pytest.approx(hi, abs=1e-9)
