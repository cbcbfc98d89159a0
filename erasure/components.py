"""Per-component outputs written into the residual stream, computed from cached hooks.

A head's output is z_h @ W_O[h] (TransformerLens `hook_result` without b_O), computed from `hook_z` because
`use_attn_result` makes every forward pass several times slower. An MLP's output is `hook_mlp_out`.
"""
from __future__ import annotations

from typing import Callable

import torch
from jaxtyping import Float
from transformer_lens import HookedTransformer

from erasure.config import Component


def output_hook(comp: Component) -> str:
    """The hook a component's output is computed from."""
    return f"blocks.{comp.layer}.attn.hook_z" if comp.is_head else f"blocks.{comp.layer}.hook_mlp_out"


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
    model: HookedTransformer, inputs: torch.Tensor, names: set[str], hooks: list[tuple[str, Callable]] = (), **forward_kwargs
) -> dict[str, torch.Tensor]:
    """Forward pass that returns the named activations (and applies `hooks`), without a full ActivationCache."""
    store: dict[str, torch.Tensor] = {}

    def save(act, hook):
        store[hook.name] = act

    model.run_with_hooks(
        inputs, fwd_hooks=list(hooks) + [(lambda n: n in names, save)], return_type=None, **forward_kwargs
    )
    return store
