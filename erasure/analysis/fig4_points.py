"""The model's side of paper Fig 4 (docs/methods.md §4.4), computed batch by batch in the activations pass, so the
fig4 stage fits its lines without the model (erasure.analysis.fig4).

Per (prompt, position) of the first `activations.n_dla_prompts` prompts, on the clean model's top-2 logit
difference u = W_U[:, t1] - W_U[:, t2]: x = DLA of the writer output o, y = DLA of the erasers' V-composition part
(clean minus V-patched eraser outputs), y_full = DLA of the erasers' whole clean output. The authors' code
variant (repo fig5) on the first `fig4.code_variant.n_prompts` of them: positions start_pos..p-2,
u = W_U[:, actual next token], and the writer pushed through the erasers' summed OV circuit without attention
weighting, ((o - mean)/sigma_L) @ sum_h W_V[L,h] W_O[L,h]. And the tokens the writer's mean output boosts most
(paper §3.5, metrics/aligned_tokens.json).
"""
from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float, Int

from erasure.errors import ParamError
from erasure.mechanism.dla import at_least_float32, centres, dla, top2_dla
from erasure.mechanism.hooks import post_norm
from erasure.mechanism.names import Component
from erasure.params.sections import Fig4


def check_start_pos(start_pos: int, seq_len: int) -> None:
    if start_pos > seq_len - 2:
        raise ParamError(f"fig4.code_variant.start_pos = {start_pos} is not allowed: "
                         f"must be at most seq_len - 2 = {seq_len - 2} (the prompts' seq_len)")


def ov_sum(model, heads: list[Component]) -> Float[torch.Tensor, "d d"]:
    """sum_h W_V[L,h] @ W_O[L,h] over the given heads (TransformerLens expands GQA W_V to every head).

    Post-norm models (Gemma 3): W_O times the post-attention norm's weight; its per-position scale depends on the
    whole attention output and is left out (this variant has no attention pattern either)."""
    total = None
    for comp in heads:
        attn = model.blocks[comp.layer].attn
        ov = attn.W_V[comp.head] @ attn.W_O[comp.head]
        if post_norm(model):
            ov = ov * model.blocks[comp.layer].ln1_post.w
        total = ov if total is None else total + ov
    return total


def code_variant_points(
    writer_out: Float[torch.Tensor, "n p d"],
    scale_patch: Float[torch.Tensor, "n p"],
    scale_final: Float[torch.Tensor, "n p"],
    tokens: Int[torch.Tensor, "n p"],
    W_U: Float[torch.Tensor, "d v"],
    ov: Float[torch.Tensor, "d d"],
    start_pos: int,
    centre: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' repo fig5: (x, y) at sources start_pos..p-2 with u = W_U[:, next token] (one column).

    x = DLA(o); y = DLA(((o - mean)/sigma_L) @ OV), no attention weighting; both with sigma_f at the source.
    """
    n, p, _ = writer_out.shape
    check_start_pos(start_pos, p)
    xs, ys = [], []
    for b in range(n):
        o = at_least_float32(writer_out[b, start_pos : p - 1])
        u = W_U.T[tokens[b, start_pos + 1 : p]]
        sf = at_least_float32(scale_final[b, start_pos : p - 1])
        o_c = o - o.mean(-1, keepdim=True) if centre else o
        w = (o_c / at_least_float32(scale_patch[b, start_pos : p - 1, None])) @ ov
        xs.append(dla(o, sf, u, centre))
        ys.append(dla(w, sf, u, centre))
    return torch.cat(xs), torch.cat(ys)


def aligned_tokens(
    writer_over_scale_mean: Float[torch.Tensor, " d"], W_U: Float[torch.Tensor, "d v"], tokenizer, k: int = 20
) -> list[dict]:
    """The k tokens with the highest mean DLA of the writer: mean((o - mean o)/sigma_f) @ W_U (centred, no b_U)."""
    W_c = W_U - W_U.mean(-1, keepdim=True)
    scores = at_least_float32(writer_over_scale_mean) @ W_c
    top = torch.topk(scores, k)
    return [
        {"token": tokenizer.decode([int(i)]), "id": int(i), "score": float(s)}
        for s, i in zip(top.values.tolist(), top.indices.tolist())
    ]


class Fig4Points:
    """Accumulates Fig 4's points over the batches of the activations pass (`add`), then `arrays()`."""

    def __init__(self, model, erasers: list[Component], n_dla: int, settings: Fig4):
        self.W_U = at_least_float32(model.W_U.detach())
        self.centre = centres(model)
        heads = [e for e in erasers if e.is_head]
        # Code variant: only head erasers have an OV circuit; every head uses the ln1 scale of the first patched
        # layer (exact when all erasers share one layer, as on gelu-4l and planted-4l).
        self.ov = at_least_float32(ov_sum(model, heads)) if heads else None
        self.n_dla = n_dla
        self.n_code = min(settings.code_variant.n_prompts, n_dla)
        self.start_pos = settings.code_variant.start_pos
        self.top_k = settings.aligned_top_k
        self.parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("writer", "vcomp", "erasers", "code_x", "code_y")}

    def add(self, start: int, tokens, writer_out, vcomp_out, erasers_out, scale_final, scale_patch, top2) -> None:
        """One batch's vectors (prompts start.. of the pass); only prompts below n_dla count."""
        k = min(self.n_dla - start, tokens.shape[0])
        if k <= 0:
            return
        c = self.centre
        dlas = top2_dla([writer_out[:k], vcomp_out[:k], erasers_out[:k]], scale_final[:k], self.W_U, top2[:k], c)
        for key, values in zip(("writer", "vcomp", "erasers"), dlas):
            self.parts[key].append(values)
        j = min(self.n_code - start, k)
        if self.ov is not None and j > 0:
            cx, cy = code_variant_points(writer_out[:j], scale_patch[:j], scale_final[:j], tokens[:j], self.W_U,
                                         self.ov, self.start_pos, c)
            self.parts["code_x"].append(cx)
            self.parts["code_y"].append(cy)

    def arrays(self) -> dict[str, np.ndarray]:
        """The points as float32 numpy arrays (the content of erasure.paths.FIG4_POINTS)."""
        out = {}
        for key, parts in self.parts.items():
            joined = torch.cat(parts) if parts else torch.zeros(0)
            out[key] = joined.detach().to("cpu", torch.float32).numpy()
        return out

    def meta(self, writer_over_scale_mean: torch.Tensor, tokenizer) -> dict:
        """What the fig4 stage checks and reports besides the points (meta.json `fig4`)."""
        return {
            "n_prompts": self.n_dla,
            "code_variant": {"n_prompts": self.n_code, "start_pos": self.start_pos, "has_heads": self.ov is not None},
            "aligned_top_k": self.top_k,
            "aligned_tokens": aligned_tokens(writer_over_scale_mean, self.W_U, tokenizer, self.top_k),
        }
