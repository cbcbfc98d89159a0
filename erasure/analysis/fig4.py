"""Paper Fig 4 (docs/methods.md §4.4): is the writer's DLA real, or erased downstream?

x = DLA(o) of the writer output o, y = DLA of the erasers' V-composition part (clean minus V-patched eraser
outputs), both on the clean model's top-2 logit difference u = W_U[:, t1] - W_U[:, t2] at every position of the
first `fig4.n_prompts` prompts. If the erasers remove what the writer wrote, y ~ slope * x with a negative slope:
the writer's DLA overstates its effect on the logits.

The authors' code (repo fig5) did something different, reported here as `code_variant`: first 10 prompts,
positions start_pos..p-2, u = W_U[:, actual next token], and the writer pushed through the erasers' summed OV
circuit without attention weighting, ((o - mean)/sigma_L) @ sum_h W_V[L,h] W_O[L,h].

Also here: the tokens the writer's mean output boosts most (paper §3.5, metrics/aligned_tokens.json).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float, Int
from safetensors.torch import load_file

from erasure.analysis.tables import REMEDY, ActivationMeta, load_meta
from erasure.errors import DataError, ParamError
from erasure.mechanism.bootstrap import PromptBootstrap
from erasure.mechanism.dla import centres, dla, top2_dla
from erasure.mechanism.hooks import post_norm
from erasure.mechanism.linefit import bootstrap_fit, fit_line
from erasure.mechanism.names import Component
from erasure.params.sections import Fig4, Stats
from erasure.paths import ACTIVATIONS_DIR


def position_mask(seq_len: int, positions: str) -> np.ndarray:
    """Boolean mask over positions: all | no_bos (drop 0) | no_bos_no_last (drop 0 and seq_len - 1)."""
    mask = np.ones(seq_len, dtype=bool)
    if positions in ("no_bos", "no_bos_no_last"):
        mask[0] = False
    if positions == "no_bos_no_last":
        mask[-1] = False
    if not mask.any():
        raise ParamError(f"fig4.positions = {positions!r} leaves no position for seq_len {seq_len}")
    return mask


CACHE_FILE = "dla_cache.safetensors"
CACHE_KEYS = ("tokens", "writer_out", "vcomp_out", "erasers_out", "scale_final", "scale_patch_layer", "top2",
              "writer_over_scale_mean")


def load_dla_cache(act_dir: str | Path) -> tuple[dict[str, torch.Tensor], ActivationMeta]:
    """data/activations/dla_cache.safetensors and meta.json, or a DataError saying which stage to run."""
    act_dir = Path(act_dir)
    meta = load_meta(act_dir)
    cache_file = act_dir / CACHE_FILE
    if not cache_file.exists():
        raise DataError(f"{cache_file} not found: run `dvc repro activations` first")
    try:
        return load_file(str(cache_file)), meta
    except Exception as err:  # safetensors raises its own types on a truncated/corrupt file: one line
        raise DataError(f"{cache_file} is unreadable ({type(err).__name__}: {err}): {REMEDY}") from None


def check_cache(
    cache: dict[str, torch.Tensor], meta: ActivationMeta, model_name: str, writer: Component,
    erasers: list[Component], act_dir: str | Path = ACTIVATIONS_DIR,
) -> None:
    """DataError unless the DLA cache has every array with consistent shapes, finite values, and is of this model
    and roles."""
    where = Path(act_dir) / CACHE_FILE
    missing = [k for k in CACHE_KEYS if k not in cache]
    if missing:
        raise DataError(f"{where} lacks {', '.join(missing)}: {REMEDY}")
    n, p, d = cache["writer_out"].shape
    expect = {"tokens": (n, p), "vcomp_out": (n, p, d), "erasers_out": (n, p, d), "scale_final": (n, p),
              "scale_patch_layer": (n, p), "top2": (n, p, 2), "writer_over_scale_mean": (d,)}
    for key, shape in expect.items():
        if tuple(cache[key].shape) != shape:
            raise DataError(f"{where}: {key} has shape {tuple(cache[key].shape)}, expected {shape}: {REMEDY}")
    for key in CACHE_KEYS:
        bad = int((~torch.isfinite(cache[key])).sum())
        if bad:
            raise DataError(f"{where}: {key} holds {bad} NaN/inf values; the cache must be finite: {REMEDY}")
    if meta.model != model_name:
        raise DataError(f"{act_dir} was computed for model {meta.model!r} but params.yaml selects {model_name!r}: "
                        f"{REMEDY}")
    if meta.writer != writer.name or list(meta.erasers) != [e.name for e in erasers]:
        raise DataError(f"{act_dir} was computed for another writer/eraser set: {REMEDY}")


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
) -> tuple[np.ndarray, np.ndarray]:
    """The authors' repo fig5: (x, y) at sources start_pos..p-2 with u = W_U[:, next token] (one column).

    x = DLA(o); y = DLA(((o - mean)/sigma_L) @ OV), no attention weighting; both with sigma_f at the source.
    """
    n, p, _ = writer_out.shape
    xs, ys = [], []
    for b in range(n):
        o = writer_out[b, start_pos : p - 1].float()
        u = W_U.T[tokens[b, start_pos + 1 : p]]
        sf = scale_final[b, start_pos : p - 1].float()
        o_c = o - o.mean(-1, keepdim=True) if centre else o
        w = (o_c / scale_patch[b, start_pos : p - 1, None].float()) @ ov
        xs.append(dla(o, sf, u, centre))
        ys.append(dla(w, sf, u, centre))
    return torch.cat(xs).numpy(), torch.cat(ys).numpy()


def aligned_tokens(
    writer_over_scale_mean: Float[torch.Tensor, " d"], W_U: Float[torch.Tensor, "d v"], tokenizer, k: int = 20
) -> list[dict]:
    """The k tokens with the highest mean DLA of the writer: mean((o - mean o)/sigma_f) @ W_U (centred, no b_U)."""
    W_c = W_U - W_U.mean(-1, keepdim=True)
    scores = writer_over_scale_mean.float() @ W_c
    top = torch.topk(scores, k)
    return [
        {"token": tokenizer.decode([int(i)]), "id": int(i), "score": float(s)}
        for s, i in zip(top.values.tolist(), top.indices.tolist())
    ]


@dataclass
class Fig4Result:
    metrics: dict
    x: np.ndarray  # paper version, points used (flattened)
    y: np.ndarray


def fig4_metrics(
    cache: dict[str, torch.Tensor], model, settings: Fig4, stats: Stats, model_name: str, writer: Component,
    erasers: list[Component],
) -> Fig4Result:
    """Every number of metrics/fig4_dla.json from the DLA cache and the model's W_U / W_V / W_O; the fits of the
    paper's version and of the full erasers get prompt-bootstrap intervals (`r_low`, `r_high`, ...)."""
    W_U = model.W_U.detach().float()
    n_cache, p, _ = cache["writer_out"].shape
    if settings.code_variant.start_pos > p - 2:  # checked before the long DLA passes
        raise ParamError(f"fig4.code_variant.start_pos = {settings.code_variant.start_pos} is not allowed: must be "
                         f"at most seq_len - 2 = {p - 2} (the prompts' seq_len)")
    n = min(settings.n_prompts, n_cache)
    if n < 2:
        raise DataError(f"fig4 needs at least 2 prompts in the DLA cache to bootstrap over prompts, got {n}")
    mask = position_mask(p, settings.positions)
    sl = slice(0, n)
    top2, sf = cache["top2"][sl].long(), cache["scale_final"][sl]
    c = centres(model)
    x = top2_dla(cache["writer_out"][sl], sf, W_U, top2, "DLA writer", c)[:, mask].numpy()
    y = top2_dla(cache["vcomp_out"][sl], sf, W_U, top2, "DLA V-composition", c)[:, mask].numpy()
    y_full = top2_dla(cache["erasers_out"][sl], sf, W_U, top2, "DLA erasers", c)[:, mask].numpy()

    boot = PromptBootstrap.create(n, stats.n_bootstrap, stats.bootstrap_seed, stats.level)
    paper = {**fit_line(x, y), **bootstrap_fit(x, y, boot)}
    paper.update({"n_points": int(x.size), "n_prompts": n, "positions": settings.positions})

    # Code variant: only head erasers have an OV circuit; every head uses the cache's ln1 scale of the first
    # patched layer (exact when all erasers share one layer, as on gelu-4l and planted-4l).
    heads = [e for e in erasers if e.is_head]
    n_code = min(settings.code_variant.n_prompts, n_cache)
    code = {"r": None, "slope": None, "intercept": None, "n_points": 0}
    if heads:
        cx, cy = code_variant_points(
            cache["writer_out"][:n_code], cache["scale_patch_layer"][:n_code], cache["scale_final"][:n_code],
            cache["tokens"][:n_code].long(), W_U, ov_sum(model, heads), settings.code_variant.start_pos, c,
        )
        code = {**fit_line(cx, cy), "n_points": int(cx.size)}
    code.update({"n_prompts": n_code, "start_pos": settings.code_variant.start_pos})

    metrics = {
        "model": model_name,
        "writer": writer.name,
        "erasers": [e.name for e in erasers],
        "bootstrap": boot.record(),
        "paper": paper,
        "full_erasers": {**fit_line(x, y_full), **bootstrap_fit(x, y_full, boot)},
        "code_variant": code,
    }
    return Fig4Result(metrics=metrics, x=x.ravel(), y=y.ravel())
