"""Every TransformerLens hook the analyses use, by name, and the forward pass that captures them.

A component's output is what it adds to the residual stream, computed from cached hooks: a head's is z_h @ W_O[h]
(TransformerLens `hook_result` without b_O), from `hook_z` because `use_attn_result` makes every forward pass
several times slower; an MLP's is `hook_mlp_out`. Models with a norm after each sublayer (Gemma 2/3:
`use_normalization_before_and_after`) normalise the summed attention output before adding it: there a head's
write is (z_h @ W_O[h]) * w_post / s_post, with the layer's shared `ln1_post` scale s_post, so the heads' writes
still sum to `hook_attn_out` (erasure/models/gemma3.py says what that means). `head_hooks` names what to cache.
"""
from __future__ import annotations

import re
from collections.abc import Callable

import torch
from jaxtyping import Float
from transformer_lens import HookedTransformer

from erasure.mechanism.names import Component

FINAL_SCALE = "ln_final.hook_scale"  # sigma_f: the final LayerNorm's scale
FINAL_NORMALIZED = "ln_final.hook_normalized"  # the residual after the final LayerNorm (input of the unembedding)


def resid_hook(checkpoint: str) -> str:
    """The hook of a residual checkpoint (`resid_pre0`, `resid_mid2`, `resid_post3`)."""
    kind, layer = re.match(r"resid_(pre|mid|post)(\d+)$", checkpoint).groups()
    return f"blocks.{layer}.hook_resid_{kind}"


def resid_pre_hook(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_pre"


def z_hook(layer: int) -> str:
    """Every head's z (attention-weighted values) of one layer: (batch, pos, head, d_head)."""
    return f"blocks.{layer}.attn.hook_z"


def v_hook(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_v"


def attn_out_hook(layer: int) -> str:
    """What the attention sublayer adds to the residual (after the post-attention norm, where there is one)."""
    return f"blocks.{layer}.hook_attn_out"


def mlp_out_hook(layer: int) -> str:
    return f"blocks.{layer}.hook_mlp_out"


def ln1_scale_hook(layer: int) -> str:
    return f"blocks.{layer}.ln1.hook_scale"


def ln1_post_scale_hook(layer: int) -> str:
    """The scale of the norm applied to a layer's summed attention output (post-norm models only)."""
    return f"blocks.{layer}.ln1_post.hook_scale"


def ln1_normalized_hook(layer: int) -> str:
    return f"blocks.{layer}.ln1.hook_normalized"


def ln2_normalized_hook(layer: int) -> str:
    """The MLP's input: the normalised residual entering a layer's MLP (resid_mid after ln2)."""
    return f"blocks.{layer}.ln2.hook_normalized"


def hook_layer(name: str) -> int | None:
    """The block a hook belongs to (None for hooks outside the blocks, e.g. ln_final)."""
    match = re.match(r"blocks\.(\d+)\.", name)
    return int(match.group(1)) if match else None


def post_norm(model: HookedTransformer) -> bool:
    """Whether the attention output is normalised before it is added to the residual (Gemma 2/3)."""
    return bool(getattr(model.cfg, "use_normalization_before_and_after", False))


def head_hooks(model: HookedTransformer, layer: int) -> set[str]:
    """The hooks a layer's head outputs are computed from."""
    return {z_hook(layer), ln1_post_scale_hook(layer)} if post_norm(model) else {z_hook(layer)}


def output_hooks(model: HookedTransformer, comp: Component) -> set[str]:
    """The hooks a component's output is computed from."""
    return head_hooks(model, comp.layer) if comp.is_head else {mlp_out_hook(comp.layer)}


def _post(model: HookedTransformer, layer: int, store: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """x (b, p, ..., d) as written after the post-attention norm: * w_post / s_post (identity without post norm)."""
    if not post_norm(model):
        return x
    scale = store[ln1_post_scale_hook(layer)]  # (b, p, 1)
    scale = scale.reshape(scale.shape[:2] + (1,) * (x.dim() - 2))
    return x * model.blocks[layer].ln1_post.w / scale


def head_outputs(
    model: HookedTransformer, layer: int, store: dict[str, torch.Tensor]
) -> Float[torch.Tensor, "b p h d"]:
    """Every head's write into the residual of one layer (store: the `head_hooks` of that layer)."""
    return _post(model, layer, store, torch.einsum("bphk,hkd->bphd", store[z_hook(layer)],
                                                   model.blocks[layer].attn.W_O))


def head_prs(
    model: HookedTransformer, layer: int, store: dict[str, torch.Tensor], o: Float[torch.Tensor, "b p d"]
) -> Float[torch.Tensor, "b p h"]:
    """PR(head write, o) of every head of a layer, without materialising each head's d_model-sized output:
    z_h . (W_O[h] (w_post * o)) / (s_post |o|^2)."""
    w = model.blocks[layer].ln1_post.w if post_norm(model) else 1.0
    o_in_head = torch.einsum("hkd,bpd->bphk", model.blocks[layer].attn.W_O, o * w)
    pr = (store[z_hook(layer)] * o_in_head).sum(-1) / (o * o).sum(-1, keepdim=True)
    return pr / store[ln1_post_scale_hook(layer)] if post_norm(model) else pr


def component_output(
    model: HookedTransformer, cache: dict[str, torch.Tensor], comp: Component
) -> Float[torch.Tensor, "b p d"]:
    """The vector `comp` writes into the residual at each position (no bias terms)."""
    if comp.is_head:
        z = cache[z_hook(comp.layer)][:, :, comp.head]
        return _post(model, comp.layer, cache, z @ model.blocks[comp.layer].attn.W_O[comp.head])
    return cache[mlp_out_hook(comp.layer)]


def run_capture(
    model: HookedTransformer,
    inputs: torch.Tensor,
    names: set[str],
    hooks: list[tuple[str, Callable]] = (),
    **forward_kwargs,
) -> dict[str, torch.Tensor]:
    """Forward pass that returns the named activations (and applies `hooks`), without a full ActivationCache."""
    store: dict[str, torch.Tensor] = {}

    def save(act, hook):
        store[hook.name] = act

    model.run_with_hooks(
        inputs, fwd_hooks=list(hooks) + [(lambda n: n in names, save)], return_type=None, **forward_kwargs
    )
    return store
