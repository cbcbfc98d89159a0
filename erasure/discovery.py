"""Automatic writer/eraser discovery (issue 5): which component's output is erased, by whom, and through V.

Every head and MLP is a candidate writer w. All statistics are projection ratios PR(c, w) = <c, w>/|w|^2 per
(prompt, position) token, pooled over the prompt set like the authors (methods.md §3).

Persistence. Raw PR(resid_k, w) is dominated by the growth of the residual norm in deep models (SmolLM2), so
persistence counts only what is written from w onward:

    P_k(w) = PR(w + sum of c written after w and before checkpoint k, w) = 1 + sum_c PR(c, w)

where "c after w" means c reads w: heads and MLPs of later layers, and the MLP of w's own layer when w is a head
(own-layer heads run in parallel with w). Biases (b_O, b_out) are attributed to no component and not counted.

Rules (thresholds are params, section `discovery`):
- Writers: every component of layers 0..n_layers-2 (an eraser must sit in a later layer, like the pipeline's
  params check).
- Window: the score looks at the checkpoints after w up to resid_post of layer w.layer + `horizon_layers`. In a
  deep model the last layers write outputs hundreds of times larger than an early head's; their small negative
  cosine with w would otherwise give P_k = -200 (SmolLM2: MLP29 onto layer-0 heads), which is not erasure.
- Writer score: erasure(w) = 1 - min over the window of median_tokens P_k(w) (the most of w's output that is gone
  at any point of the window). Also reported: 1 - median P at the last checkpoint.
- Relevance filters (a writer failing one is listed with `excluded_by` and never selected):
  `min_rel_norm`: median |w| / |resid at w's own checkpoint| must reach it, so that writers whose outputs are
  tiny cannot win by noise (their PRs are ratios with a tiny denominator);
  `max_overshoot`: the minimum median P in the window must be >= -max_overshoot (later components writing far
  more than w along -w cancel a shared direction, they do not erase w);
  `require_consistent`: q75 of P_k(w) at the minimum must be < 1, i.e. at least 3/4 of the tokens lost part of
  w (noise writers have a median below 1 by chance but an interquartile range straddling it).
- Erasing layer: the window layer l with the largest drop median P(resid_post_{l-1}) - median P(resid_post_l).
- Erasers (for the `top_writers` best-scoring relevant writers): the components c of the erasing layer (scope
  `layer`) or of every window layer (scope `all`) whose median PR(c, w) < -`eraser_threshold`.
- V-composition test: on the first `n_vcomp_prompts` prompts, the patch of paper Fig 3 (erasure.vcomp) removes
  w's clean output from the value input of every layer holding an eraser head. Reported per eraser (and for the
  per-token sum over the erasers): clean and patched medians and the V-composition share 1 - patched/clean.
- Centred control: the same persistence from PR(c - mean c, w - mean w) (position-constant means over non-BOS
  tokens), to tell erasure of token information from the cancelling of a shared bias-like direction.

Streaming statistics. Prompts are streamed in batches; per batch only the component outputs (tokens x components
x d_model) live in memory, and they are reduced in token chunks to the writer x later-component PR matrix. Every
median/quantile of the full scan comes from a fixed-bin histogram per series (pair (w, c), persistence (w, k),
relevance w) on an asinh axis: u = asinh(x / s), `hist_bins` equal bins on [-asinh(M/s), asinh(M/s)] (values
beyond +-M fall in the end bins). A quantile is interpolated linearly inside its bin, so its error is at most the
bin width there: s * (sinh(u + du) - sinh(u)) ~= du * sqrt(x^2 + s^2) (du = 2 asinh(M/s) / bins): fine near 0 where
erasers are told apart, relative (~1-2 %) for large values. Memory: n_series x (bins + 1) int32 counts. The
V-composition pass is small (top writers x erasers x tokens of the subset) and uses exact quantiles.
Everything is deterministic (no sampling): same params and prompts give the same metrics.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import torch
from jaxtyping import Float, Int
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from erasure.components import component_output, head_outputs, output_hook, run_capture
from erasure.config import (
    Component,
    ParamError,
    all_components,
    checkpoint_hook,
    checkpoint_names,
    require_choice,
    require_float,
    require_int,
)
from erasure.vcomp import vcomp_patch_hooks

SCOPES = ("layer", "all")
TOKEN_CHUNK = 256  # tokens reduced at once to the (writer x component) PR matrix (bounds the Gram matrix memory)
HIST_UPDATE_ELEMS = 1 << 22  # values binned per bincount call (bounds the index tensor memory)
N_MOST_NEGATIVE = 10  # later components listed per top writer in discovery.json (the atlas shows all)


# --- params ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiscoveryParams:
    batch_size: int = 4
    n_prompts: int | None = None  # None = every prompt
    n_vcomp_prompts: int = 16
    include_bos: bool = True
    top_writers: int = 5
    min_rel_norm: float = 0.02
    horizon_layers: int | None = 4  # None = every later layer
    max_overshoot: float = 0.5
    require_consistent: bool = True
    eraser_threshold: float = 0.02
    eraser_scope: str = "layer"
    hist_bins: int = 2048
    hist_scale: float = 0.01
    hist_max: float = 1e4
    atlas_rows: int = 20

    @classmethod
    def from_dict(cls, section: Any) -> "DiscoveryParams":
        """Validate params.yaml's `discovery` section; a bad value raises ParamError naming `discovery.<key>`."""
        if not isinstance(section, dict):
            raise ParamError("discovery is missing from params.yaml (a mapping of the discover stage's params)")
        known = set(cls.__dataclass_fields__)
        unknown = set(section) - known
        if unknown:
            raise ParamError(
                f"discovery.{sorted(unknown)[0]} is not allowed: known keys are {', '.join(sorted(known))}"
            )
        missing = known - set(section)
        if missing:
            raise ParamError(f"discovery.{sorted(missing)[0]} is missing from params.yaml (every discovery param is stated)")
        d = dict(section)
        p = "discovery."
        n_prompts = d["n_prompts"]
        if n_prompts == "all" or n_prompts is None:
            n_prompts = None
        else:
            n_prompts = require_int(n_prompts, p + "n_prompts", 1, why=" or all")
        for key in ("include_bos", "require_consistent"):
            if not isinstance(d[key], bool):
                raise ParamError(f"{p}{key} = {d[key]!r} is not allowed: must be true or false")
        horizon = d["horizon_layers"]
        if horizon == "all" or horizon is None:
            horizon = None
        else:
            horizon = require_int(horizon, p + "horizon_layers", 1, why=" or all")
        threshold = require_float(d["eraser_threshold"], p + "eraser_threshold", 0.0, 1.0)
        if not 0.0 < threshold < 1.0:
            raise ParamError(f"{p}eraser_threshold = {threshold!r} is not allowed: must be a number in (0, 1)")
        hist_scale = require_float(d["hist_scale"], p + "hist_scale", 1e-6, 1.0)
        hist_max = require_float(d["hist_max"], p + "hist_max", 1.0, 1e12)
        if hist_scale <= 0 or hist_max <= hist_scale:
            raise ParamError(f"{p}hist_scale/hist_max are not allowed: need 0 < hist_scale < hist_max")
        return cls(
            batch_size=require_int(d["batch_size"], p + "batch_size", 1, 1024),
            n_prompts=n_prompts,
            n_vcomp_prompts=require_int(d["n_vcomp_prompts"], p + "n_vcomp_prompts", 1),
            include_bos=d["include_bos"],
            top_writers=require_int(d["top_writers"], p + "top_writers", 1),
            min_rel_norm=require_float(d["min_rel_norm"], p + "min_rel_norm", 0.0, 1e3),
            horizon_layers=horizon,
            max_overshoot=require_float(d["max_overshoot"], p + "max_overshoot", 0.0, 1e6),
            require_consistent=d["require_consistent"],
            eraser_threshold=threshold,
            eraser_scope=require_choice(d["eraser_scope"], p + "eraser_scope", SCOPES),
            hist_bins=require_int(d["hist_bins"], p + "hist_bins", 16, 1 << 16),
            hist_scale=hist_scale,
            hist_max=hist_max,
            atlas_rows=require_int(d["atlas_rows"], p + "atlas_rows", 1),
        )


# --- streaming quantiles --------------------------------------------------------------------------------------


class AsinhHistogram:
    """Fixed-bin histograms of many series on an asinh axis; quantiles within one bin width (module docstring)."""

    def __init__(self, n_series: int, bins: int, scale: float, max_abs: float):
        self.n_series, self.bins, self.scale = n_series, bins, scale
        self.u_max = math.asinh(max_abs / scale)
        self.du = 2 * self.u_max / bins
        self.counts = torch.zeros(n_series, bins + 1, dtype=torch.int32)  # last column: NaN (not counted)

    @property
    def nbytes(self) -> int:
        return self.counts.numel() * self.counts.element_size()

    def bin_width(self, x: float) -> float:
        """Width of the bin holding x: the bound on the error of a quantile that falls there."""
        u = min(math.asinh(abs(x) / self.scale), self.u_max - self.du)
        return self.scale * (math.sinh(u + self.du) - math.sinh(u))

    def update(self, values: Float[torch.Tensor, "t s"], series: slice | None = None) -> None:
        """Add a (tokens, series) block of values (NaN skipped) to the series `series` (default: all)."""
        series = series or slice(0, self.n_series)
        t, s = values.shape
        step = max(1, HIST_UPDATE_ELEMS // max(t, 1))
        nb = self.bins + 1
        flat_counts = self.counts.view(-1)
        for a in range(0, s, step):
            f = values[:, a : a + step].div(self.scale).asinh_().add_(self.u_max).div_(self.du)
            f.clamp_(0, self.bins - 0.5).nan_to_num_(nan=self.bins)  # +-inf: end bins; NaN: the ignored column
            idx = f.floor_().to(torch.int64)
            idx += torch.arange(series.start + a, series.start + a + f.shape[1]).mul_(nb)
            flat_counts.scatter_add_(0, idx.view(-1), torch.ones(idx.numel(), dtype=torch.int32))

    def n(self) -> np.ndarray:
        return self.counts[:, : self.bins].sum(1).numpy()

    def quantiles(self, qs: list[float]) -> np.ndarray:
        """(len(qs), n_series) quantiles; NaN for an empty series."""
        c = self.counts[:, : self.bins].double()
        cum = c.cumsum(1)
        n = cum[:, -1:]
        out = []
        for q in qs:
            target = (q * n).clamp(min=1e-9)
            b = torch.searchsorted(cum.contiguous(), target).clamp(max=self.bins - 1)
            prev = torch.where(b > 0, cum.gather(1, (b - 1).clamp(min=0)), torch.zeros_like(target))
            frac = ((target - prev) / c.gather(1, b).clamp(min=1)).clamp(0, 1)
            u = -self.u_max + (b.double() + frac) * self.du
            x = (self.scale * torch.sinh(u)).squeeze(1)
            x[n.squeeze(1) == 0] = float("nan")
            out.append(x.numpy())
        return np.stack(out)


# --- component layout ----------------------------------------------------------------------------------------


class Layout:
    """Components, checkpoints, and which component reads which (the PR pairs and persistence series)."""

    def __init__(self, n_layers: int, n_heads: int):
        self.n_layers, self.n_heads = n_layers, n_heads
        self.components = all_components(n_layers, n_heads)
        self.names = [c.name for c in self.components]
        self.checkpoints = checkpoint_names(n_layers)
        n = len(self.components)
        # index of the first checkpoint that contains the component's output
        self.own = torch.tensor([1 + 2 * c.layer + (0 if c.is_head else 1) for c in self.components])
        self.after = self.own[None, :] > self.own[:, None]  # after[w, c]: c reads w
        self.writers = [i for i, c in enumerate(self.components) if c.layer < n_layers - 1]
        pw, pc = [], []
        for w in self.writers:
            cs = torch.nonzero(self.after[w]).flatten().tolist()
            pw += [w] * len(cs)
            pc += cs
        self.pair_w, self.pair_c = torch.tensor(pw), torch.tensor(pc)
        self.pair_flat = self.pair_w * n + self.pair_c
        self.pair_index = {(w, c): i for i, (w, c) in enumerate(zip(pw, pc))}
        sw, sk = [], []
        for w in self.writers:
            ks = list(range(int(self.own[w]) + 1, len(self.checkpoints)))
            sw += [w] * len(ks)
            sk += ks
        self.ser_w, self.ser_k = torch.tensor(sw), torch.tensor(sk)
        self.ser_flat = self.ser_w * len(self.checkpoints) + self.ser_k
        self.ser_index = {(w, k): i for i, (w, k) in enumerate(zip(sw, sk))}
        self.segment = torch.nn.functional.one_hot(self.own, len(self.checkpoints)).float()  # (n, n_ckpt)
        self.writer_rows = torch.tensor(self.writers)

    @property
    def n(self) -> int:
        return len(self.components)

    def index(self, name: str) -> int:
        return self.names.index(name)


def capture_outputs(
    model: HookedTransformer, tokens: Int[torch.Tensor, "b p"], layout: Layout, extra: set[str] = frozenset()
) -> tuple[Float[torch.Tensor, "b p n d"], Float[torch.Tensor, "b p k"], dict[str, torch.Tensor]]:
    """One clean forward pass: every component's output, the residual norm at each checkpoint, `extra` hooks."""
    b, p = tokens.shape
    H = layout.n_heads
    outs = torch.empty(b, p, layout.n, model.cfg.d_model)
    norms = torch.empty(b, p, len(layout.checkpoints))
    store: dict[str, torch.Tensor] = {}
    hooks: list[tuple[str, Callable]] = []
    for layer in range(layout.n_layers):
        base = layer * (H + 1)

        def z_hook(z, hook, layer=layer, base=base):
            outs[:, :, base : base + H] = head_outputs(model, layer, z)

        def mlp_hook(x, hook, base=base):
            outs[:, :, base + H] = x

        hooks += [(f"blocks.{layer}.attn.hook_z", z_hook), (f"blocks.{layer}.hook_mlp_out", mlp_hook)]
    for k, name in enumerate(layout.checkpoints):

        def norm_hook(x, hook, k=k):
            norms[:, :, k] = x.norm(dim=-1)

        hooks.append((checkpoint_hook(name), norm_hook))

    def save(x, hook):
        store[hook.name] = x

    hooks += [(name, save) for name in extra]
    model.run_with_hooks(tokens, fwd_hooks=hooks, return_type=None)
    return outs, norms, store


def pair_ratios(outs: Float[torch.Tensor, "t n d"], layout: Layout) -> Float[torch.Tensor, "t n n"]:
    """R[t, w, c] = PR(c, w) for c reading w (0 elsewhere, NaN rows where |w| = 0); block upper-triangular Gram."""
    t, n, _ = outs.shape
    gram = torch.zeros(t, n, n)
    H = layout.n_heads
    for layer in range(layout.n_layers):
        a, b = layer * (H + 1), (layer + 1) * (H + 1)
        gram[:, a:b, a:] = torch.bmm(outs[:, a:b], outs[:, a:].transpose(1, 2))
    norm2 = gram.diagonal(dim1=1, dim2=2).clone()
    norm2[norm2 <= 0] = float("nan")
    ratios = gram.div_(norm2.unsqueeze(-1))
    return ratios.mul_(layout.after.float())


def persistence(ratios: Float[torch.Tensor, "t n n"], layout: Layout) -> Float[torch.Tensor, "t n k"]:
    """P[t, w, k] = 1 + sum of PR(c, w) over c reading w and written before checkpoint k."""
    return 1.0 + torch.cumsum(ratios @ layout.segment, dim=-1)


# --- pass 1: the full scan -----------------------------------------------------------------------------------


@dataclass
class Scan:
    pair: AsinhHistogram  # PR(c, w) for every pair
    persist: AsinhHistogram  # P_k(w) for every writer and later checkpoint
    rel_norm: AsinhHistogram  # |w| / |resid at w's checkpoint|
    mean_out: torch.Tensor  # (n, d) mean output of each component over non-BOS tokens
    n_tokens: int


def positions(p: int, include_bos: bool) -> slice:
    return slice(0, p) if include_bos else slice(1, p)


def scan(
    model: HookedTransformer, tokens: Int[torch.Tensor, "n p"], layout: Layout, dp: DiscoveryParams
) -> Scan:
    """Stream the prompts; accumulate the pair, persistence and relevance histograms."""
    hist = dict(bins=dp.hist_bins, scale=dp.hist_scale, max_abs=dp.hist_max)
    pair = AsinhHistogram(len(layout.pair_w), **hist)
    persist = AsinhHistogram(len(layout.ser_w), **hist)
    rel = AsinhHistogram(len(layout.writers), **hist)
    mean_sum = torch.zeros(layout.n, model.cfg.d_model, dtype=torch.float64)
    n_mean, n_tokens = 0, 0
    n, p = tokens.shape
    pos = positions(p, dp.include_bos)
    own_w = layout.own[layout.writer_rows]
    bar = tqdm(total=n, desc="discover: scan", unit="prompt")
    for start in range(0, n, dp.batch_size):
        batch = tokens[start : start + dp.batch_size]
        outs, norms, _ = capture_outputs(model, batch, layout)
        mean_sum += outs[:, 1:].sum((0, 1)).double()
        n_mean += outs.shape[0] * (p - 1)
        outs = outs[:, pos].reshape(-1, layout.n, outs.shape[-1])
        norms = norms[:, pos].reshape(-1, norms.shape[-1])
        n_tokens += outs.shape[0]
        for a in range(0, outs.shape[0], TOKEN_CHUNK):
            chunk = outs[a : a + TOKEN_CHUNK]
            t = chunk.shape[0]
            ratios = pair_ratios(chunk, layout)
            pair.update(ratios.view(t, -1)[:, layout.pair_flat])
            persist.update(persistence(ratios, layout).view(t, -1)[:, layout.ser_flat])
            w_norm = chunk[:, layout.writer_rows].norm(dim=-1)
            rel.update(w_norm / norms[a : a + t][:, own_w])
            del ratios
        bar.update(len(batch))
    bar.close()
    return Scan(pair, persist, rel, (mean_sum / max(n_mean, 1)).float(), n_tokens)


# --- ranking and eraser selection ---------------------------------------------------------------------------


def _f(x: Any) -> float | None:
    x = float(x)
    return None if math.isnan(x) else round(x, 6)


def window_layers(comp: Component, layout: Layout, dp: DiscoveryParams) -> range:
    """The later layers the writer score looks at: w.layer+1 .. w.layer+horizon_layers (capped at the last)."""
    last = layout.n_layers - 1 if dp.horizon_layers is None else min(comp.layer + dp.horizon_layers, layout.n_layers - 1)
    return range(comp.layer + 1, last + 1)


def rank_writers(sc: Scan, layout: Layout, dp: DiscoveryParams) -> tuple[list[dict], np.ndarray]:
    """Every writer's score, persistence curve and erasing layer; sorted (relevant writers first, by erasure)."""
    pq = sc.persist.quantiles([0.25, 0.5, 0.75])
    pair_q = sc.pair.quantiles([0.25, 0.5, 0.75])
    rel_med = sc.rel_norm.quantiles([0.5])[0]
    ckpts = layout.checkpoints
    writers = []
    for row, w in enumerate(layout.writers):
        comp = layout.components[w]
        own = int(layout.own[w])
        later_k = range(own + 1, len(ckpts))
        med = {ckpts[own]: 1.0} | {ckpts[k]: float(pq[1, layout.ser_index[(w, k)]]) for k in later_k}
        q75 = {ckpts[k]: float(pq[2, layout.ser_index[(w, k)]]) for k in later_k}
        layers = window_layers(comp, layout, dp)
        end = ckpts.index(f"resid_post{layers[-1]}")
        window = [ckpts[k] for k in range(own + 1, end + 1)]
        vals = np.array([med[k] for k in window])
        finite = np.isfinite(vals).any()
        erasure = 1.0 - np.nanmin(vals) if finite else math.nan
        k_min = window[int(np.nanargmin(vals))] if finite else window[0]
        drops = {l: med[f"resid_post{l - 1}"] - med[f"resid_post{l}"] for l in layers}
        erasing_layer = max(drops, key=lambda l: (drops[l] if np.isfinite(drops[l]) else -math.inf, -l))
        excluded = []
        if not rel_med[row] >= dp.min_rel_norm:
            excluded.append("min_rel_norm")
        if not finite or 1.0 - erasure < -dp.max_overshoot:
            excluded.append("max_overshoot")
        if dp.require_consistent and not q75[k_min] < 1.0:
            excluded.append("require_consistent")
        writers.append(
            {
                "name": comp.name,
                "index": w,
                "relevant": not excluded,
                "excluded_by": excluded,
                "rel_norm": _f(rel_med[row]),
                "erasure": _f(erasure),
                "erasure_final": _f(1.0 - med[ckpts[-1]]),
                "window": [window[0], window[-1]],
                "min_checkpoint": k_min,
                "min_checkpoint_q75": _f(q75[k_min]),
                "erasing_layer": erasing_layer,
                "layer_drops": {f"L{l}": _f(v) for l, v in drops.items()},
                "persistence": {k: _f(v) for k, v in med.items()},
                "persistence_q25": {ckpts[k]: _f(pq[0, layout.ser_index[(w, k)]]) for k in later_k},
                "persistence_q75": {k: _f(v) for k, v in q75.items()},
            }
        )
    writers.sort(key=lambda r: (not r["relevant"], -(r["erasure"] if r["erasure"] is not None else -math.inf), r["index"]))
    return writers, pair_q


def select_erasers(writer: dict, pair_q: np.ndarray, layout: Layout, dp: DiscoveryParams) -> tuple[list[dict], list[dict]]:
    """(erasers, the most negative later components) of one writer, from the full-scan pair medians."""
    w = writer["index"]
    ranked = []
    for c in torch.nonzero(layout.after[w]).flatten().tolist():
        i = layout.pair_index[(w, c)]
        ranked.append({"name": layout.names[c], "index": c, "median": float(pair_q[1, i]),
                       "q25": float(pair_q[0, i]), "q75": float(pair_q[2, i])})
    ranked.sort(key=lambda r: (r["median"], r["index"]))
    if dp.eraser_scope == "layer":
        allowed = {writer["erasing_layer"]}
    else:
        allowed = set(window_layers(layout.components[w], layout, dp))
    erasers = [
        r for r in ranked
        if layout.components[r["index"]].layer in allowed and r["median"] < -dp.eraser_threshold
    ]
    erasers.sort(key=lambda r: r["index"])
    return erasers, ranked


# --- pass 2: V-composition test and centred control on a prompt subset --------------------------------------


def _quant(x: torch.Tensor, q: float) -> float | None:
    x = x[torch.isfinite(x)]
    return None if x.numel() == 0 else float(torch.quantile(x.double(), q))


def vcomp_pass(
    model: HookedTransformer,
    tokens: Int[torch.Tensor, "n p"],
    layout: Layout,
    dp: DiscoveryParams,
    top: list[dict],
    mean_out: torch.Tensor,
) -> None:
    """Clean vs V-patched eraser PRs and centred persistence for each top writer (results added in place)."""
    n, p = tokens.shape
    pos = positions(p, dp.include_bos)
    patch_layers = {r["name"]: sorted({layout.components[e["index"]].layer for e in r["erasers"]
                                       if layout.components[e["index"]].is_head}) for r in top}
    scale_layers = sorted({l for ls in patch_layers.values() for l in ls})
    extra = {f"blocks.{l}.ln1.hook_scale" for l in scale_layers} | {f"blocks.{l}.hook_resid_pre" for l in scale_layers}
    acc: dict[str, dict[str, list]] = {r["name"]: {"clean": [], "patched": [], "P": [], "Pc": []} for r in top}
    bar = tqdm(total=n * (1 + sum(bool(v) for v in patch_layers.values())), desc="discover: V-comp", unit="run")
    for start in range(0, n, dp.batch_size):
        batch = tokens[start : start + dp.batch_size]
        outs, _, store = capture_outputs(model, batch, layout, extra)
        bar.update(len(batch))
        flat = outs[:, pos].reshape(-1, layout.n, outs.shape[-1])
        for r in top:
            w = r["index"]
            o = outs[:, :, w]
            e_idx = [e["index"] for e in r["erasers"]]
            ow = flat[:, w]
            later = layout.after[w]
            # persistence, exact on this subset; centred: PR(c - mean c, w - mean w) (means over non-BOS tokens)
            dw = ow - mean_out[w]
            centred = (torch.einsum("tnd,td->tn", flat, dw) - dw @ mean_out.T) / (dw * dw).sum(-1, keepdim=True)
            for key, pr in (("P", _prs(flat, ow)), ("Pc", centred)):
                acc[r["name"]][key].append(1.0 + torch.cumsum((pr * later.float()) @ layout.segment, -1))
            if not e_idx:
                continue
            acc[r["name"]]["clean"].append(_prs(flat[:, e_idx], ow))
            layers = patch_layers[r["name"]]
            if not layers:
                continue
            first, last = layers[0], max(layout.components[i].layer for i in e_idx)
            scales = {l: store[f"blocks.{l}.ln1.hook_scale"] for l in layers}
            erasers = [layout.components[i] for i in e_idx]
            after_patch = run_capture(
                model, store[f"blocks.{first}.hook_resid_pre"], {output_hook(e) for e in erasers},
                vcomp_patch_hooks(model, o, scales, layers), start_at_layer=first, stop_at_layer=last + 1,
            )
            patched = torch.stack([component_output(model, after_patch, e) for e in erasers], dim=2)
            acc[r["name"]]["patched"].append(_prs(patched[:, pos].reshape(-1, len(e_idx), outs.shape[-1]), ow))
            bar.update(len(batch))
    bar.close()
    ckpts = layout.checkpoints
    for r in top:
        a = acc[r["name"]]
        own = int(layout.own[r["index"]])
        curves = {}
        for key in ("P", "Pc"):
            P = torch.cat(a[key])
            curves[key] = {ckpts[own]: 1.0} | {ckpts[k]: _quant(P[:, k], 0.5) for k in range(own + 1, len(ckpts))}
        r["subset"] = {
            "n_prompts": n,
            "erasure": _erasure(curves["P"], r["window"]),
            "erasure_centred": _erasure(curves["Pc"], r["window"]),
            "persistence": {k: _f(v) if v is not None else None for k, v in curves["P"].items()},
            "persistence_centred": {k: _f(v) if v is not None else None for k, v in curves["Pc"].items()},
        }
        r["vcomp_layers"] = patch_layers[r["name"]]
        if not r["erasers"]:
            r["eraser_sum"] = None
            continue
        clean = torch.cat(a["clean"])
        patched = torch.cat(a["patched"]) if a["patched"] else None
        for j, e in enumerate(r["erasers"]):
            e["clean_median"] = _f(_quant(clean[:, j], 0.5))
            e["patched_median"] = _f(_quant(patched[:, j], 0.5)) if patched is not None else None
            e["vcomp_share"] = _share(e["clean_median"], e["patched_median"])
        s_clean = _quant(clean.sum(1), 0.5)
        s_patched = _quant(patched.sum(1), 0.5) if patched is not None else None
        r["eraser_sum"] = {"clean_median": _f(s_clean), "patched_median": _f(s_patched) if s_patched is not None else None,
                           "vcomp_share": _share(s_clean, s_patched)}


def _erasure(curve: dict, window: list[str]) -> float | None:
    """1 - the minimum of a persistence curve over the writer's window of checkpoints."""
    names = list(curve)
    vals = [curve[k] for k in names[names.index(window[0]) : names.index(window[1]) + 1] if curve[k] is not None]
    return _f(1.0 - min(vals)) if vals else None


def _prs(vectors: Float[torch.Tensor, "t e d"], w: Float[torch.Tensor, "t d"]) -> Float[torch.Tensor, "t e"]:
    return torch.einsum("ted,td->te", vectors, w) / (w * w).sum(-1, keepdim=True)


def _share(clean: float | None, patched: float | None) -> float | None:
    if clean is None or patched is None or clean == 0:
        return None
    return _f(1.0 - patched / clean)


# --- the whole discovery ------------------------------------------------------------------------------------


RULES = {
    "persistence": "P_k(w) = 1 + sum of PR(c, w) over components c reading w written before checkpoint k "
                   "(median over tokens)",
    "window": "checkpoints after w up to resid_post of layer w.layer + discovery.horizon_layers",
    "writer_score": "erasure = 1 - min over the window of median P_k(w); relevant writers ranked by it",
    "relevance": "median |w| / |resid at w's checkpoint| >= discovery.min_rel_norm; min median P in the window "
                 ">= -discovery.max_overshoot; if discovery.require_consistent: q75 of P_k(w) < 1 at the minimum",
    "erasing_layer": "window layer l maximising median P(resid_post_{l-1}) - median P(resid_post_l)",
    "erasers": "components of the erasing layer (scope layer) or of any window layer (scope all) with "
               "median PR(c, w) < -discovery.eraser_threshold",
    "vcomp_share": "1 - patched median / clean median, V-patch of erasure.vcomp on the layers of the eraser heads, "
                   "first discovery.n_vcomp_prompts prompts",
    "selected": "the best-ranked relevant writer with a non-empty eraser set",
    "centred": "persistence from PR(c - mean c, w - mean w), means over non-BOS tokens (V-comp subset)",
}


def discover(
    model: HookedTransformer,
    tokens: Int[torch.Tensor, "n p"],
    dp: DiscoveryParams,
    model_name: str = "",
    params_writer: str | None = None,
    params_erasers: list[str] | None = None,
) -> tuple[dict, dict]:
    """Run discovery; returns (the discovery.json dict, arrays for the figures)."""
    torch.manual_seed(0)
    if dp.n_prompts is not None:
        tokens = tokens[: dp.n_prompts]
    layout = Layout(model.cfg.n_layers, model.cfg.n_heads)
    t0 = time.perf_counter()
    sc = scan(model, tokens, layout, dp)
    t_scan = time.perf_counter() - t0
    writers, pair_q = rank_writers(sc, layout, dp)
    relevant = [r for r in writers if r["relevant"]]
    top = relevant[: dp.top_writers]
    for r in top:
        r["erasers"], ranked = select_erasers(r, pair_q, layout, dp)
        r["most_negative"] = [{k: _f(v) if k != "name" else v for k, v in x.items() if k != "index"}
                              for x in ranked[:N_MOST_NEGATIVE]]
    t0 = time.perf_counter()
    vcomp_pass(model, tokens[: dp.n_vcomp_prompts], layout, dp, top, sc.mean_out)
    t_vcomp = time.perf_counter() - t0
    for r in top:
        for e in r["erasers"]:
            e.pop("index")
            for k in ("median", "q25", "q75"):
                e[k] = _f(e[k])
    selected = next((r for r in top if r["erasers"]), None)
    sel = {
        "writer": selected["name"] if selected else None,
        "erasers": [e["name"] for e in selected["erasers"]] if selected else [],
        "rank": (top.index(selected) + 1) if selected else None,
    }
    rediscovered = None
    if params_writer is not None and params_erasers is not None:
        rediscovered = bool(
            top and top[0]["name"] == params_writer and sel["writer"] == params_writer
            and set(sel["erasers"]) == set(params_erasers)
        )
    hist = sc.pair
    n, p = tokens.shape
    result = {
        "model": model_name,
        "n_prompts": n,
        "seq_len": p,
        "n_tokens": sc.n_tokens,
        "include_bos": dp.include_bos,
        "params": asdict(dp),
        "rules": RULES,
        "histogram": {
            "axis": "u = asinh(x / hist_scale), hist_bins equal bins on +-asinh(hist_max / hist_scale)",
            "quantile_error_bound": "one bin width: du * sqrt(x^2 + s^2) approximately",
            "error_bound_at": {str(x): _f(hist.bin_width(x)) for x in (0.0, 0.03, 0.1, 0.3, 1.0, 10.0)},
        },
        "selected": sel,
        "params_writer": params_writer,
        "params_erasers": params_erasers,
        "rediscovered": rediscovered,
        "n_writers": len(writers),
        "n_writers_relevant": len(relevant),
        "writers": [_public(r) for r in top],
        "ranking": [
            {k: r[k] for k in ("name", "erasure", "erasure_final", "erasing_layer", "rel_norm", "excluded_by")}
            for r in writers
        ],
    }
    figures = {
        "layout": layout,
        "pair_median": pair_q[1],
        "writers": writers,
        "top": top,
        "timing_s": {"scan": t_scan, "vcomp": t_vcomp},
        "memory_bytes": {"pair_hist": sc.pair.nbytes, "persist_hist": sc.persist.nbytes},
    }
    return result, figures


def _public(r: dict) -> dict:
    keys = ("name", "erasure", "erasure_final", "window", "min_checkpoint", "min_checkpoint_q75", "erasing_layer",
            "layer_drops", "rel_norm",
            "persistence", "persistence_q25", "persistence_q75", "erasers", "eraser_sum", "vcomp_layers",
            "most_negative", "subset")
    return {k: r.get(k) for k in keys}


def atlas_matrix(figures: dict, rows: int) -> tuple[list[str], list[str], np.ndarray]:
    """(writer names, component names, median PR(c, w)) for the best `rows` writers (NaN where c does not read w)."""
    layout: Layout = figures["layout"]
    chosen = figures["writers"][:rows]  # relevant writers by score, then the excluded ones by score
    mat = np.full((len(chosen), layout.n), np.nan)
    for i, r in enumerate(chosen):
        w = r["index"]
        for c in torch.nonzero(layout.after[w]).flatten().tolist():
            mat[i, c] = figures["pair_median"][layout.pair_index[(w, c)]]
    return [r["name"] + ("" if r["relevant"] else " *") for r in chosen], layout.names, mat


# --- figures ------------------------------------------------------------------------------------------------


def plot_atlas(figures: dict, path, rows: int, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    names, cols, mat = atlas_matrix(figures, rows)
    layout: Layout = figures["layout"]
    finite = np.abs(mat[np.isfinite(mat)])
    lim = float(min(max(np.quantile(finite, 0.99) if finite.size else 0.1, 0.05), 1.0))
    width = min(max(10.0, 4 + 0.12 * len(cols)), 26)
    fig, ax = plt.subplots(figsize=(width, 2 + 0.3 * max(len(names), 1)))
    cmap = plt.get_cmap("RdBu_r").copy()
    cmap.set_bad("#dddddd")
    im = ax.imshow(np.ma.masked_invalid(mat), aspect="auto", cmap=cmap,
                   norm=TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim), interpolation="nearest")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    if len(cols) <= 60:
        ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=7)
    else:  # one tick per layer
        H = layout.n_heads + 1
        ax.set_xticks([l * H for l in range(layout.n_layers)], [f"L{l}H0" for l in range(layout.n_layers)],
                      rotation=90, fontsize=7)
    for l in range(1, layout.n_layers):
        ax.axvline(l * (layout.n_heads + 1) - 0.5, color="k", lw=0.5, ls="--")
    ax.set_xlabel("later component c (grey: does not read w)")
    ax.set_ylabel("writer w (ranked by erasure;\n* = excluded by a relevance filter)")
    cb = fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01)
    cb.set_label(f"median PR(c, w) (clipped at ±{lim:.2g})")
    ax.set_title(title or "Erasure atlas: median PR(c, w) of each later component c onto writer w", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def plot_persistence(figures: dict, path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layout: Layout = figures["layout"]
    ckpts = layout.checkpoints
    fig, ax = plt.subplots(figsize=(max(8, 0.22 * len(ckpts) + 4), 5))
    lo, hi = 0.0, 1.0
    for i, r in enumerate(figures["top"]):
        colour = f"C{i % 10}"
        x = [ckpts.index(k) for k in r["persistence"]]
        y = np.array([np.nan if v is None else v for v in r["persistence"].values()])
        ax.plot(x, y, marker="o", ms=3, color=colour, label=f"{r['name']} (erasure {r['erasure']:.2f})")
        ax.axvline(ckpts.index(r["window"][1]), color=colour, lw=0.6, ls="--")
        lo, hi = np.nanmin([lo, *y]), np.nanmax([hi, *y])
        if r.get("subset"):
            xc = [ckpts.index(k) for k in r["subset"]["persistence_centred"]]
            yc = [np.nan if v is None else v for v in r["subset"]["persistence_centred"].values()]
            ax.plot(xc, yc, ls=":", color=colour, lw=1)
    ax.axhline(1.0, color="grey", lw=0.7)
    ax.axhline(0.0, color="k", lw=0.7)
    if lo < -2 or hi > 3:  # late giant outputs (deep models): linear in [-1, 1], logarithmic beyond
        ax.set_yscale("symlog", linthresh=1.0)
    step = 1 if len(ckpts) <= 20 else 2
    ax.set_xticks(range(0, len(ckpts), step), ckpts[::step], rotation=90, fontsize=8)
    ax.set_xlabel("residual checkpoint k (dashed: end of the writer's scoring window)")
    ax.set_ylabel("median P_k(w) = 1 + Σ PR(c, w), c written after w")
    ax.set_title(title or "Persistence of the top writers\n(dotted: token means removed, on the V-comp prompt subset)")
    ax.legend(title="writer", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
