"""Component writes from cached hooks equal what TransformerLens adds to the residual, with and without a norm
after the attention sublayer (Gemma 3's `ln1_post`)."""
import pytest
import torch

from erasure.mechanism.hooks import (
    attn_out_hook,
    component_output,
    head_hooks,
    head_outputs,
    head_prs,
    ln1_post_scale_hook,
    post_norm,
    run_capture,
)
from erasure.mechanism.names import Component
from erasure.mechanism.projection import projection_ratio
from helpers import tiny_model

# float32 sums of 4 head writes of order 1: a few ulps; 1e-5 absolute is ~100x the rounding observed (~1e-7).
ATOL = 1e-5
MODELS = [("LNPre", None, False), ("RMSPre", 2, False), ("RMSPre", 1, True)]


@pytest.mark.parametrize("norm,kv_heads,post", MODELS)
def test_head_writes_sum_to_attention_output(norm, kv_heads, post):
    """sum_h head_outputs = TransformerLens's hook_attn_out - b_O (b_O enters before the post norm where there is one)."""
    model = tiny_model(norm, kv_heads, post_norm=post)
    assert post_norm(model) is post
    tokens = torch.randint(0, 100, (2, 20), generator=torch.Generator().manual_seed(3))
    layer = 1
    store = run_capture(model, tokens, head_hooks(model, layer) | {attn_out_hook(layer)})
    heads = head_outputs(model, layer, store)
    b_O = model.blocks[layer].attn.b_O
    if post:  # the norm sees z W_O + b_O: count b_O's share through the same scale, as the model does
        scale = store[ln1_post_scale_hook(layer)]
        bias = b_O * model.blocks[layer].ln1_post.w / scale
    else:
        bias = b_O
    torch.testing.assert_close(heads.sum(2) + bias, store[attn_out_hook(layer)], atol=ATOL, rtol=0)
    for h in range(model.cfg.n_heads):
        torch.testing.assert_close(component_output(model, store, Component(layer, h)), heads[:, :, h])


@pytest.mark.parametrize("norm,kv_heads,post", MODELS)
def test_head_prs_equal_projection_ratios_of_the_writes(norm, kv_heads, post):
    model = tiny_model(norm, kv_heads, post_norm=post)
    tokens = torch.randint(0, 100, (2, 20), generator=torch.Generator().manual_seed(4))
    store = run_capture(model, tokens, head_hooks(model, 2))
    o = torch.randn(2, 20, model.cfg.d_model, generator=torch.Generator().manual_seed(5))
    expected = projection_ratio(head_outputs(model, 2, store), o.unsqueeze(2))
    torch.testing.assert_close(head_prs(model, 2, store, o), expected, atol=ATOL, rtol=1e-5)
