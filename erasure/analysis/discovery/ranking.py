"""Writer scores, relevance filters and eraser selection, from the full-scan quantiles (rules: the package doc)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from erasure.analysis.discovery.layout import Layout
from erasure.analysis.discovery.scan import Scan
from erasure.mechanism.bootstrap import PromptBootstrap
from erasure.mechanism.names import Component
from erasure.params.sections import Discovery


def rounded(x: Any) -> float | None:
    """A statistic as the record holds it: a float, or None where it is undefined (NaN). Rounding happens once, when
    the record is written (outputs.significant_digits: erasure.io.round_significant)."""
    x = float(x)
    return None if math.isnan(x) else x


def window_layers(comp: Component, layout: Layout, dp: Discovery) -> range:
    """The later layers the writer score looks at: w.layer+1 .. w.layer+horizon_layers (capped at the last)."""
    last = layout.n_layers - 1
    if dp.horizon_layers is not None:
        last = min(comp.layer + dp.horizon_layers, last)
    return range(comp.layer + 1, last + 1)


def window_checkpoints(w: int, layout: Layout, dp: Discovery) -> list[int]:
    """Checkpoint indices of writer w's score window: after w, up to resid_post of its last window layer."""
    end = layout.checkpoints.index(f"resid_post{window_layers(layout.components[w], layout, dp)[-1]}")
    return list(range(int(layout.own[w]) + 1, end + 1))


def window_series(layout: Layout, dp: Discovery) -> tuple[torch.Tensor, list[list[int]]]:
    """The persistence series of every writer's window (indices into the scan's series), and for each writer
    (layout.writers order) the positions of its window's series in that selection, in checkpoint order."""
    keep, columns = [], []
    for w in layout.writers:
        ks = window_checkpoints(w, layout, dp)
        columns.append(list(range(len(keep), len(keep) + len(ks))))
        keep += [layout.ser_index[(w, k)] for k in ks]
    return torch.tensor(keep), columns


def rank_writers(sc: Scan, layout: Layout, dp: Discovery) -> tuple[list[dict], np.ndarray]:
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
        window = [ckpts[k] for k in window_checkpoints(w, layout, dp)]
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
                "rel_norm": rounded(rel_med[row]),
                "erasure": rounded(erasure),
                "erasure_final": rounded(1.0 - med[ckpts[-1]]),
                "window": [window[0], window[-1]],
                "min_checkpoint": k_min,
                "min_checkpoint_q75": rounded(q75[k_min]),
                "erasing_layer": erasing_layer,
                "layer_drops": {f"L{l}": rounded(v) for l, v in drops.items()},
                "persistence": {k: rounded(v) for k, v in med.items()},
                "persistence_q25": {ckpts[k]: rounded(pq[0, layout.ser_index[(w, k)]]) for k in later_k},
                "persistence_q75": {k: rounded(v) for k, v in q75.items()},
            }
        )
    writers.sort(
        key=lambda r: (not r["relevant"], -(r["erasure"] if r["erasure"] is not None else -math.inf), r["index"])
    )
    return writers, pair_q


def select_erasers(writer: dict, pair_q: np.ndarray, layout: Layout, dp: Discovery) -> tuple[list[dict], list[dict]]:
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


def bootstrap_ranking(
    sc: Scan, layout: Layout, dp: Discovery, columns: list[list[int]], boot: PromptBootstrap
) -> tuple[np.ndarray, np.ndarray]:
    """rank_writers' score and relevance rules on each prompt resample of `boot` (erasure.mechanism.bootstrap: the
    pooled-token quantiles recomputed exactly on every resampled prompt set).

    Returns (top, erasure): the row (layout.writers order) of each draw's best relevant writer (-1 if none is
    relevant; ties go to the lower component index, as in rank_writers) and every writer's erasure per draw.
    """
    med, q75 = boot.series_quantiles(boot.by_prompt(sc.kept.numpy()), [0.5, 0.75])
    rel_med = boot.series_quantiles(boot.by_prompt(sc.rel_values.numpy()), [0.5])[0]
    width = max(len(c) for c in columns)
    idx = np.array([c + [-1] * (width - len(c)) for c in columns])  # (writers, width), -1 = padding
    window = np.where(idx < 0, np.nan, med[:, np.maximum(idx, 0)])  # (draws, writers, width)
    finite = np.isfinite(window).any(-1)
    filled = np.where(np.isfinite(window), window, np.inf)
    k_min = filled.argmin(-1)  # (draws, writers)
    low = np.where(finite, np.take_along_axis(filled, k_min[..., None], -1)[..., 0], np.nan)
    erasure = 1.0 - low
    with np.errstate(invalid="ignore"):  # NaN compares false: a writer without values is not relevant
        relevant = finite & (rel_med >= dp.min_rel_norm) & (low >= -dp.max_overshoot)
        if dp.require_consistent:
            draws = np.arange(len(med))[:, None]
            relevant &= q75[draws, idx[np.arange(len(columns)), k_min]] < 1.0
    score = np.where(relevant, erasure, -np.inf)
    tops = np.where(relevant.any(-1), score.argmax(-1), -1)
    return tops, erasure
