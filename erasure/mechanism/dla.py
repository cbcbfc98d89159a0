"""Direct logit attribution (docs/methods.md §3): what a vector written into the residual stream adds to a logit
difference, through the final LayerNorm's (frozen) scale and the unembedding.

DLA of a vector v written at (prompt b, position p) onto a direction u:

    DLA(v) = ((v - mean_d v) / sigma_f[b, p]) . u          (no b_U; sigma_f = clean ln_final scale)

For RMS-normalized models (SmolLM2) the mean is not subtracted (`centre=False`), as TransformerLens'
`apply_ln_to_stack` does; tests/mechanism/test_dla.py checks `dla` against `ActivationCache.logit_attrs` for both.
"""
from __future__ import annotations

import torch
from jaxtyping import Float, Int
from tqdm import tqdm


def dla(
    vectors: Float[torch.Tensor, "... d"],
    scale_final: Float[torch.Tensor, ...],
    directions: Float[torch.Tensor, "... d"],
    centre: bool = True,
) -> Float[torch.Tensor, ...]:
    """((v - mean_d v) / sigma_f) . u, one scalar per leading index; no b_U.

    `centre=False` for RMS-normalized models (SmolLM2), whose final norm does not subtract the mean: v / sigma_f . u.

    `scale_final` may carry TransformerLens' trailing singleton axis ((b, p, 1) from `hook_scale`) or not
    ((b, p) as in the DLA cache). `directions` broadcasts against `vectors` (one u for all, or one per index).
    """
    if scale_final.dim() == vectors.dim():
        scale_final = scale_final.squeeze(-1)
    centred = vectors - vectors.mean(-1, keepdim=True) if centre else vectors
    return (centred * directions).sum(-1) / scale_final


def centres(model) -> bool:
    """Whether the model's LayerNorms subtract the mean (LN/LNPre) or not (RMS/RMSPre), as apply_ln_to_stack does."""
    return model.cfg.normalization_type in ("LN", "LNPre")


def logit_diff_direction(
    W_U: Float[torch.Tensor, "d v"], pair: Int[torch.Tensor, "... 2"]
) -> Float[torch.Tensor, "... d"]:
    """u = W_U[:, t1] - W_U[:, t2] for each (t1, t2) in `pair`."""
    return W_U.T[pair[..., 0]] - W_U.T[pair[..., 1]]


def top2_dla(
    vectors: Float[torch.Tensor, "n p d"],
    scale_final: Float[torch.Tensor, "n p"],
    W_U: Float[torch.Tensor, "d v"],
    top2: Int[torch.Tensor, "n p 2"],
    desc: str | None = None,
    centre: bool = True,
) -> Float[torch.Tensor, "n p"]:
    """DLA on the top-2 logit difference at every (prompt, position), one prompt at a time (memory: p x d)."""
    out = torch.empty(vectors.shape[:2], dtype=torch.float32)
    for b in tqdm(range(vectors.shape[0]), desc=desc, disable=desc is None, leave=False):
        out[b] = dla(vectors[b].float(), scale_final[b].float(), logit_diff_direction(W_U, top2[b]), centre)
    return out
