"""Every TransformerLens hook the analyses use, by name, and the forward pass that captures them.

A component's output is computed from cached hooks: a head's is z_h @ W_O[h] (TransformerLens `hook_result`
without b_O), from `hook_z` because `use_attn_result` makes every forward pass several times slower; an MLP's
is `hook_mlp_out`.
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


def mlp_out_hook(layer: int) -> str:
    return f"blocks.{layer}.hook_mlp_out"


def ln1_scale_hook(layer: int) -> str:
    return f"blocks.{layer}.ln1.hook_scale"


def ln1_normalized_hook(layer: int) -> str:
    return f"blocks.{layer}.ln1.hook_normalized"


def hook_layer(name: str) -> int | None:
    """The block a hook belongs to (None for hooks outside the blocks, e.g. ln_final)."""
    match = re.match(r"blocks\.(\d+)\.", name)
    return int(match.group(1)) if match else None


def output_hook(comp: Component) -> str:
    """The hook a component's output is computed from."""
    return z_hook(comp.layer) if comp.is_head else mlp_out_hook(comp.layer)


def head_outputs(
    model: HookedTransformer, layer: int, z: Float[torch.Tensor, "b p h dh"]
) -> Float[torch.Tensor, "b p h d"]:
    """Every head's output of one layer: z_h @ W_O[h]."""
    return torch.einsum("bphk,hkd->bphd", z, model.blocks[layer].attn.W_O)


def component_output(
    model: HookedTransformer, cache: dict[str, torch.Tensor], comp: Component
) -> Float[torch.Tensor, "b p d"]:
    """The vector `comp` writes at each position (no bias terms)."""
    if comp.is_head:
        z = cache[output_hook(comp)][:, :, comp.head]
        return z @ model.blocks[comp.layer].attn.W_O[comp.head]
    return cache[output_hook(comp)]


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
