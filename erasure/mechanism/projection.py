"""Projection ratio PR(v, w) = <v, w> / |w|^2: how much of direction w is present in v (docs/methods.md §3)."""
from __future__ import annotations

import torch
from jaxtyping import Float


def projection_ratio(
    v: Float[torch.Tensor, "... d"], w: Float[torch.Tensor, "... d"]
) -> Float[torch.Tensor, ...]:
    """One scalar per leading index; no epsilon, like the authors (a zero w gives inf/nan, never a silent 0)."""
    return (v * w).sum(-1) / (w * w).sum(-1)
