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


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """x in float32, or float64 if it already is: DLA scalars are never computed in half precision."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def top2_dla(
    vector_sets: list[Float[torch.Tensor, "n p d"]],
    scale_final: Float[torch.Tensor, "n p"],
    W_U: Float[torch.Tensor, "d v"],
    top2: Int[torch.Tensor, "n p 2"],
    centre: bool = True,
) -> list[Float[torch.Tensor, "n p"]]:
    """DLA of each set of vectors on the top-2 logit difference at every (prompt, position), one prompt at a time
    (memory: p x d), each prompt's directions gathered once for all the sets."""
    dtype = torch.promote_types(vector_sets[0].dtype, torch.float32)
    outs = [torch.empty(v.shape[:2], dtype=dtype, device=v.device) for v in vector_sets]
    for b in range(top2.shape[0]):
        u = logit_diff_direction(W_U, top2[b])
        sf = at_least_float32(scale_final[b])
        for out, vectors in zip(outs, vector_sets):
            out[b] = dla(at_least_float32(vectors[b]), sf, u, centre)
    return outs
