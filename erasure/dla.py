"""Direct logit attribution (DLA) and paper Fig 4: is the writer's DLA real, or erased downstream?

DLA of a vector v written at (prompt b, position p) onto a direction u (methods.md §3):

    DLA(v) = ((v - mean_d v) / sigma_f[b, p]) . u          (no b_U; sigma_f = clean ln_final scale)

Paper Fig 4 (methods.md §4.4): x = DLA(o) of the writer output o, y = DLA of the erasers' V-composition part
(clean minus V-patched eraser outputs), both on the clean model's top-2 logit difference
u = W_U[:, t1] - W_U[:, t2] at every position of the first `fig4.n_prompts` prompts. If the erasers remove what
the writer wrote, y ~ slope * x with a negative slope: the writer's DLA overstates its effect on the logits.

The authors' code (repo fig5) did something different, reported here as `code_variant`: first 10 prompts,
positions start_pos..p-2, u = W_U[:, actual next token], and the writer pushed through the erasers' summed OV
circuit without attention weighting, ((o - mean)/sigma_L) @ sum_h W_V[L,h] W_O[L,h].

For RMS-normalized models (SmolLM2) the mean is not subtracted (`centre=False`), as TransformerLens'
`apply_ln_to_stack` does; tests/test_dla.py checks `dla` against `ActivationCache.logit_attrs` for both.
Intervals: percentile bootstrap resampling prompts, because positions of one prompt are not independent.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from scipy import stats as sps
from tqdm import tqdm

from erasure.config import Component, DataError, Params, ParamError, require_choice, require_int

POSITION_SETS = ("all", "no_bos", "no_bos_no_last")

# ------------------------------------------------------------------------------------------------------
# DLA primitives


def dla(
    vectors: Float[torch.Tensor, "... d"],
    scale_final: Float[torch.Tensor, "..."],
    directions: Float[torch.Tensor, "... d"],
    centre: bool = True,
) -> Float[torch.Tensor, "..."]:
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


def logit_diff_direction(W_U: Float[torch.Tensor, "d v"], pair: Int[torch.Tensor, "... 2"]) -> Float[torch.Tensor, "... d"]:
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


def position_mask(seq_len: int, positions: str) -> np.ndarray:
    """Boolean mask over positions: all | no_bos (drop 0) | no_bos_no_last (drop 0 and seq_len - 1)."""
    require_choice(positions, "fig4.positions", POSITION_SETS)
    mask = np.ones(seq_len, dtype=bool)
    if positions in ("no_bos", "no_bos_no_last"):
        mask[0] = False
    if positions == "no_bos_no_last":
        mask[-1] = False
    if not mask.any():
        raise ParamError(f"fig4.positions = {positions!r} leaves no position for seq_len {seq_len}")
    return mask


# ------------------------------------------------------------------------------------------------------
# line fits and the prompt bootstrap


def fit_line(x: np.ndarray, y: np.ndarray) -> dict:
    """Pearson r and the OLS fit y = slope * x + intercept (scipy.stats.linregress) on the pooled points."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if x.size < 3:
        raise DataError(f"a line fit needs at least 3 points, got {x.size}")
    res = sps.linregress(x, y)
    return {"r": float(res.rvalue), "slope": float(res.slope), "intercept": float(res.intercept)}


def _fit_from_sums(s: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """r, slope, intercept from stacked sufficient statistics [n, Sx, Sy, Sxx, Syy, Sxy] of centred data."""
    n, sx, sy, sxx, syy, sxy = (s[..., i] for i in range(6))
    mx, my = sx / n, sy / n
    vxx, vyy, vxy = sxx - n * mx * mx, syy - n * my * my, sxy - n * mx * my
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = vxy / vxx
        r = vxy / np.sqrt(vxx * vyy)
    intercept = (my + cy) - slope * (mx + cx)
    return r, slope, intercept


def bootstrap_fit(
    x: np.ndarray, y: np.ndarray, n_bootstrap: int, seed: int, level: float = 0.95
) -> dict:
    """Percentile bootstrap intervals of (r, slope, intercept), resampling PROMPTS (rows) with replacement.

    x, y: (n_prompts, n_positions). Points of one prompt are correlated (same text), so prompts, not points,
    are the independent units. Uses per-prompt sufficient statistics, so 1000 draws take milliseconds.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    cx, cy = float(x.mean()), float(y.mean())
    xc, yc = x - cx, y - cy
    per_prompt = np.stack(
        [np.full(x.shape[0], x.shape[1], np.float64), xc.sum(1), yc.sum(1),
         (xc * xc).sum(1), (yc * yc).sum(1), (xc * yc).sum(1)],
        axis=1,
    )
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_bootstrap)])
    r, slope, intercept = _fit_from_sums(counts.astype(np.float64) @ per_prompt, cx, cy)
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    ci = lambda a: [float(v) for v in np.nanpercentile(a, [lo, hi])]  # noqa: E731
    return {"r_ci95": ci(r), "slope_ci95": ci(slope), "intercept_ci95": ci(intercept)}


# ------------------------------------------------------------------------------------------------------
# params


@dataclass(frozen=True)
class Fig4Settings:
    n_prompts: int
    positions: str
    n_bootstrap: int
    seed: int
    max_scatter_points: int
    code_n_prompts: int
    code_start_pos: int
    aligned_top_k: int


def fig4_settings(params: Params) -> Fig4Settings:
    """Validate the `fig4` section of params.yaml."""
    sec = params.section("fig4")
    code = sec.get("code_variant", {})
    if not isinstance(code, dict):
        raise ParamError("fig4.code_variant is not allowed: must be a mapping with n_prompts and start_pos")
    return Fig4Settings(
        n_prompts=require_int(sec.get("n_prompts"), "fig4.n_prompts", 1),
        positions=require_choice(sec.get("positions", "all"), "fig4.positions", POSITION_SETS),
        n_bootstrap=require_int(sec.get("n_bootstrap"), "fig4.n_bootstrap", 1),
        seed=require_int(sec.get("seed"), "fig4.seed", 0),
        max_scatter_points=require_int(sec.get("max_scatter_points", 20000), "fig4.max_scatter_points", 100),
        code_n_prompts=require_int(code.get("n_prompts"), "fig4.code_variant.n_prompts", 1),
        code_start_pos=require_int(code.get("start_pos"), "fig4.code_variant.start_pos", 0),
        aligned_top_k=require_int(sec.get("aligned_top_k", 20), "fig4.aligned_top_k", 1),
    )


# ------------------------------------------------------------------------------------------------------
# Fig 4 computations on the DLA cache

CACHE_KEYS = ("tokens", "writer_out", "vcomp_out", "erasers_out", "scale_final", "scale_patch_layer", "top2",
              "writer_over_scale_mean")


def check_cache(cache: dict[str, torch.Tensor], meta: dict, params: Params) -> None:
    """DataError unless the DLA cache has every array with consistent shapes and matches params' model."""
    missing = [k for k in CACHE_KEYS if k not in cache]
    if missing:
        raise DataError(f"DLA cache lacks {', '.join(missing)}: rerun `dvc repro activations`")
    n, p, d = cache["writer_out"].shape
    expect = {"tokens": (n, p), "vcomp_out": (n, p, d), "erasers_out": (n, p, d), "scale_final": (n, p),
              "scale_patch_layer": (n, p), "top2": (n, p, 2), "writer_over_scale_mean": (d,)}
    for key, shape in expect.items():
        if tuple(cache[key].shape) != shape:
            raise DataError(f"DLA cache {key} has shape {tuple(cache[key].shape)}, expected {shape}")
    if meta.get("model") != params.model:
        raise DataError(
            f"data/activations was computed for model {meta.get('model')!r} but params.yaml selects "
            f"{params.model!r}: rerun `dvc repro activations`"
        )
    if meta.get("writer") != params.writer.name or list(meta.get("erasers", [])) != [e.name for e in params.erasers]:
        raise DataError("data/activations was computed for another writer/eraser set: rerun `dvc repro activations`")


def ov_sum(model, heads: list[Component]) -> Float[torch.Tensor, "d d"]:
    """sum_h W_V[L,h] @ W_O[L,h] over the given heads (TransformerLens expands GQA W_V to every head)."""
    total = None
    for comp in heads:
        attn = model.blocks[comp.layer].attn
        ov = attn.W_V[comp.head] @ attn.W_O[comp.head]
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
    if start_pos > p - 2:
        raise ParamError(f"fig4.code_variant.start_pos = {start_pos} is not allowed: must be at most seq_len - 2 = {p - 2}")
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
    writer_over_scale_mean: Float[torch.Tensor, "d"], W_U: Float[torch.Tensor, "d v"], tokenizer, k: int = 20
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


def fig4_metrics(cache: dict[str, torch.Tensor], model, params: Params, settings: Fig4Settings) -> Fig4Result:
    """Every number of metrics/fig4_dla.json from the DLA cache and the model's W_U / W_V / W_O."""
    W_U = model.W_U.detach().float()
    n_cache, p, _ = cache["writer_out"].shape
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

    paper = fit_line(x, y)
    paper.update(bootstrap_fit(x, y, settings.n_bootstrap, settings.seed))
    paper.update({"n_points": int(x.size), "n_prompts": n, "positions": settings.positions})

    # Code variant: only head erasers have an OV circuit; every head uses the cache's ln1 scale of the first
    # patched layer (exact when all erasers share one layer, as on gelu-4l and planted-4l).
    heads = [e for e in params.erasers if e.is_head]
    n_code = min(settings.code_n_prompts, n_cache)
    code = {"r": None, "slope": None, "intercept": None, "n_points": 0}
    if heads:
        cx, cy = code_variant_points(
            cache["writer_out"][:n_code], cache["scale_patch_layer"][:n_code], cache["scale_final"][:n_code],
            cache["tokens"][:n_code].long(), W_U, ov_sum(model, heads), settings.code_start_pos, c,
        )
        code = {**fit_line(cx, cy), "n_points": int(cx.size)}
    code.update({"n_prompts": n_code, "start_pos": settings.code_start_pos})

    metrics = {
        "model": params.model,
        "writer": params.writer.name,
        "erasers": [e.name for e in params.erasers],
        "paper": paper,
        "full_erasers": fit_line(x, y_full),
        "code_variant": code,
    }
    return Fig4Result(metrics=metrics, x=x.ravel(), y=y.ravel())


def plot_fig4(result: Fig4Result, path, max_points: int, seed: int, writer: str) -> None:
    """Scatter of the paper version with its OLS line; at most max_points random points are drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = result.metrics["paper"]
    x, y = result.x, result.y
    if x.size > max_points:
        idx = np.random.default_rng(seed).choice(x.size, max_points, replace=False)
        x, y = x[idx], y[idx]
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.scatter(x, y, s=4, alpha=0.25, color="C0", linewidths=0,
               label=f"(prompt, position) points ({x.size:,} of {m['n_points']:,} drawn)")
    xs = np.linspace(float(result.x.min()), float(result.x.max()), 2)
    ax.plot(xs, m["slope"] * xs + m["intercept"], color="black", lw=1.5,
            label=f"OLS: slope {m['slope']:.3f}, intercept {m['intercept']:.3f}, r = {m['r']:.3f}")
    ax.axhline(0, color="grey", lw=0.6, ls="--")
    ax.axvline(0, color="grey", lw=0.6, ls="--")
    ax.set_xlabel(f"DLA of writer output ({writer})", fontsize=12)
    ax.set_ylabel("DLA of erasers' V-composition part", fontsize=12)
    ax.set_title(
        f"{result.metrics['model']}: DLA on the top-2 logit difference\n"
        f"{m['n_prompts']} prompts, positions: {m['positions']}", fontsize=13,
    )
    ax.legend(loc="upper right", fontsize=9, framealpha=0.9, markerscale=4)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)


def load_dla_cache(act_dir) -> tuple[dict[str, torch.Tensor], dict]:
    """data/activations/dla_cache.safetensors and meta.json, or a DataError saying which stage to run."""
    import json
    from pathlib import Path

    from safetensors.torch import load_file

    act_dir = Path(act_dir)
    cache_file, meta_file = act_dir / "dla_cache.safetensors", act_dir / "meta.json"
    if not cache_file.exists() or not meta_file.exists():
        raise DataError(f"{cache_file} or {meta_file} is missing: run `dvc repro activations`")
    try:
        return load_file(str(cache_file)), json.loads(meta_file.read_text())
    except Exception as err:  # a truncated/corrupt file: one line, not a traceback
        raise DataError(f"{act_dir} is unreadable ({type(err).__name__}: {err}): rerun `dvc repro activations`") from None
