"""Small shared builders for tests: a tiny random model to exercise hooks fast."""
from __future__ import annotations

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig


def tiny_model(normalization_type: str = "LNPre", n_key_value_heads: int | None = None, seed: int = 0):
    """A random 4-layer model small enough for exact float32 checks in milliseconds."""
    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(
        n_layers=4, d_model=64, n_heads=4, d_head=16, d_mlp=128, d_vocab=100, n_ctx=64, act_fn="gelu",
        normalization_type=normalization_type, n_key_value_heads=n_key_value_heads,
        positional_embedding_type="rotary" if n_key_value_heads else "standard", seed=seed,
    )
    model = HookedTransformer(cfg).eval()
    for name, param in model.named_parameters():  # TL initialises biases at 0: make them count
        if name.endswith(("b_V", "b_O", "b_in", "b_out")):
            param.data.normal_(0, 0.1)
    torch.set_grad_enabled(False)
    return model
