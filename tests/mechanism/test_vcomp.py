"""The V-composition patch: our hook_v form equals the authors' hooks, and its effect equals the OV formula."""
import pytest
import torch

from erasure.mechanism.hooks import component_output, head_hooks, run_capture
from erasure.mechanism.names import Component
from erasure.mechanism.vcomp import vcomp_patch_hooks
from helpers import tiny_model

LAYER = 2
# float32 on values of order 1 after a few matmuls: 1e-5 absolute is ~100x the rounding we see (~1e-7).
ATOL = 1e-5


MODELS = [("LNPre", None, False), ("RMSPre", 2, False), ("RMSPre", 1, True)]  # the last: Gemma 3's shape of norms


def _writer_out(model, store):
    return component_output(model, store, Component(0, 2))


def _clean(model, tokens):
    names = head_hooks(model, 0) | {f"blocks.{LAYER}.ln1.hook_scale", f"blocks.{LAYER}.attn.hook_z",
             f"blocks.{LAYER}.attn.hook_pattern", "blocks.3.hook_resid_post", f"blocks.{LAYER}.hook_resid_pre"}
    return run_capture(model, tokens, names)


def _ours(model, tokens, clean):
    hooks = vcomp_patch_hooks(model, _writer_out(model, clean), {LAYER: clean[f"blocks.{LAYER}.ln1.hook_scale"]}, [LAYER])
    return run_capture(model, tokens, {f"blocks.{LAYER}.attn.hook_z", "blocks.3.hook_resid_post"}, hooks)


def _authors(model, tokens, clean):
    """docs/methods.md §4.1 literally: split QKV input, subtract o from hook_v_input, freeze ln1's scale."""
    o, scale = _writer_out(model, clean), clean[f"blocks.{LAYER}.ln1.hook_scale"]
    model.cfg.use_split_qkv_input = True
    try:
        hooks = [
            (f"blocks.{LAYER}.hook_v_input", lambda v, hook: v - o.unsqueeze(2)),
            (f"blocks.{LAYER}.ln1.hook_scale", lambda s, hook: scale.unsqueeze(2).expand_as(s)),
        ]
        return run_capture(model, tokens, {f"blocks.{LAYER}.attn.hook_z", "blocks.3.hook_resid_post"}, hooks)
    finally:
        model.cfg.use_split_qkv_input = False


@pytest.mark.parametrize("norm,kv_heads,post", MODELS)
def test_patch_matches_authors_hooks(norm, kv_heads, post):
    model = tiny_model(norm, kv_heads, post_norm=post)
    tokens = torch.randint(0, 100, (3, 40), generator=torch.Generator().manual_seed(1))
    clean = _clean(model, tokens)
    ours, authors = _ours(model, tokens, clean), _authors(model, tokens, clean)
    z_clean = clean[f"blocks.{LAYER}.attn.hook_z"]
    assert (ours[f"blocks.{LAYER}.attn.hook_z"] - z_clean).abs().max() > 1e-3  # the patch does something
    for name in (f"blocks.{LAYER}.attn.hook_z", "blocks.3.hook_resid_post"):
        torch.testing.assert_close(ours[name], authors[name], atol=ATOL, rtol=0)


@pytest.mark.parametrize("norm,kv_heads,post", MODELS)
def test_patch_effect_is_attention_weighted_ov(norm, kv_heads, post):
    """sum_h (clean_h - patched_h) = sum_h sum_s A_h[p,s] norm(o_s)/sigma_s W_V[h] W_O[h] (docs/methods.md §4.4),
    before any post-attention norm (z W_O)."""
    model = tiny_model(norm, kv_heads, post_norm=post)
    tokens = torch.randint(0, 100, (2, 48), generator=torch.Generator().manual_seed(2))
    clean = _clean(model, tokens)
    patched = _ours(model, tokens, clean)
    attn = model.blocks[LAYER].attn
    heads = [1, 2, 3]
    o = _writer_out(model, clean)
    centred = o - o.mean(-1, keepdim=True) if norm == "LNPre" else o
    value = centred / clean[f"blocks.{LAYER}.ln1.hook_scale"]
    pattern = clean[f"blocks.{LAYER}.attn.hook_pattern"]  # (b, h, p, s)
    expected = sum(
        torch.einsum("bps,bsd->bpd", pattern[:, h], value @ attn.W_V[h] @ attn.W_O[h]) for h in heads
    )
    dz = clean[f"blocks.{LAYER}.attn.hook_z"] - patched[f"blocks.{LAYER}.attn.hook_z"]
    measured = sum(dz[:, :, h] @ attn.W_O[h] for h in heads)
    torch.testing.assert_close(measured, expected, atol=ATOL, rtol=0)
