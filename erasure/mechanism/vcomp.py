"""The V-composition patch (docs/methods.md §4.1): remove the writer's output from the value input of later layers.

The authors subtract the clean writer output o from `blocks.L.hook_v_input` (needs `use_split_qkv_input`, one
residual copy per head) and freeze `ln1`'s scale at its clean value. Because the value path is linear once the
scale is frozen, the same patch is applied here on `hook_v` without split inputs:

    v_patched = (v - b_V) * sigma_run / sigma_clean - norm(o) / sigma_clean @ W_V + b_V

where norm() is ln1's centring (LNPre: x - mean x; RMSPre: x) and sigma_run is the scale of the patched run at
that layer (equal to the clean one at the first patched layer). Queries and keys are untouched, like the authors'.
For grouped-query attention `hook_v` holds one value per KV group, so the patch covers every head of the group:
the authors patched all heads of the layer as well. tests/mechanism/test_vcomp.py checks this equals the authors' hooks.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Float
from transformer_lens import HookedTransformer

from erasure.errors import ParamError
from erasure.mechanism.hooks import ln1_scale_hook, v_hook

Hook = tuple[str, Callable]


def value_weights(model: HookedTransformer, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """W_V, b_V in the layout of `hook_v` (per KV group for ungrouped-GQA storage)."""
    attn = model.blocks[layer].attn
    if hasattr(attn, "_W_V") and not model.cfg.ungroup_grouped_query_attention:
        return attn._W_V, attn._b_V
    return attn.W_V, attn.b_V


def norm_centre(model: HookedTransformer, x: Float[torch.Tensor, "... d"]) -> Float[torch.Tensor, "... d"]:
    """The linear part of the model's norms (ln1, ln_final) before dividing by the scale (weights folded away)."""
    norm = model.cfg.normalization_type
    if norm == "LNPre":
        return x - x.mean(-1, keepdim=True)
    if norm == "RMSPre":
        return x
    raise ParamError(
        f"model normalization_type = {norm!r} is not supported by the V-composition patch: "
        "load the model with fold_ln=True (LNPre or RMSPre)"
    )


def vcomp_patch_hooks(
    model: HookedTransformer,
    writer_out: Float[torch.Tensor, "b p d"],
    clean_scales: dict[int, Float[torch.Tensor, "b p 1"]],
    layers: list[int],
) -> list[Hook]:
    """Forward hooks that remove `writer_out` from the value input of each layer in `layers`."""
    hooks: list[Hook] = []
    centred = norm_centre(model, writer_out)
    for layer in layers:
        W_V, b_V = value_weights(model, layer)
        clean = clean_scales[layer]
        # ln1's scale stays float32 under half precision (TransformerLens upcasts it): back to the weights' dtype
        removed = torch.einsum("bpd,hdk->bphk", (centred / clean).to(W_V.dtype), W_V)
        run_scale: dict[str, torch.Tensor] = {}

        def keep_scale(scale, hook, run_scale=run_scale):
            run_scale["scale"] = scale
            return scale

        def patch_v(v, hook, removed=removed, clean=clean, b_V=b_V, run_scale=run_scale):
            rescale = (run_scale["scale"] / clean).unsqueeze(-1)
            return ((v - b_V) * rescale - removed + b_V).to(v.dtype)

        hooks += [(ln1_scale_hook(layer), keep_scale), (v_hook(layer), patch_v)]
    return hooks
