"""The whole discovery: scan, rank, select erasers, test them; the discovery.json record and the atlas matrix."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Int
from transformer_lens import HookedTransformer

from erasure.analysis.discovery.bootstrap import interval, prompt_counts
from erasure.analysis.discovery.layout import Layout
from erasure.analysis.discovery.ranking import (
    bootstrap_ranking,
    rank_writers,
    rounded,
    select_erasers,
    window_series,
)
from erasure.analysis.discovery.scan import scan
from erasure.analysis.discovery.vcomp_pass import vcomp_pass
from erasure.params.sections import Discovery


@dataclass
class DiscoveryResult:
    """What discover() found: the discovery.json record, and what the atlas and persistence figures draw."""

    record: dict  # metrics/discovery.json
    layout: Layout
    pair_median: np.ndarray  # median PR(c, w) of every (writer, later component) pair
    writers: list[dict]  # every writer: relevant ones by score, then the excluded ones by score
    top: list[dict]  # the top writers, with erasers, V-composition test and centred control
    timing_s: dict
    memory_bytes: dict


N_MOST_NEGATIVE = 10  # later components listed per top writer in discovery.json (the atlas shows all)

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
    "erased_by": "medians of -sum PR(c, w) over the heads / the MLPs c reading w written by the writer's min "
                 "checkpoint (V-comp subset)",
    "bootstrap": "prompts resampled with replacement discovery.n_bootstrap times (seed discovery.bootstrap_seed); "
                 "pooled-token quantiles recomputed exactly; top writer = best relevant writer of each resample; "
                 "intervals: 2.5-97.5 percentiles",
}


def discover(
    model: HookedTransformer,
    tokens: Int[torch.Tensor, "n p"],
    dp: Discovery,
    model_name: str = "",
    params_writer: str | None = None,
    params_erasers: list[str] | None = None,
) -> DiscoveryResult:
    """Run discovery: the discovery.json record, and what the figures draw."""
    torch.manual_seed(0)
    if dp.n_prompts is not None:
        tokens = tokens[: dp.n_prompts]
    layout = Layout(model.cfg.n_layers, model.cfg.n_heads)
    t0 = time.perf_counter()
    keep, columns = window_series(layout, dp)
    sc = scan(model, tokens, layout, dp, keep)
    t_scan = time.perf_counter() - t0
    writers, pair_q = rank_writers(sc, layout, dp)
    relevant = [r for r in writers if r["relevant"]]
    top = relevant[: dp.top_writers]
    t0 = time.perf_counter()
    boot_top, boot_erasure = bootstrap_ranking(
        sc, layout, dp, columns, prompt_counts(tokens.shape[0], dp.n_bootstrap, dp.bootstrap_seed))
    row_of = {w: row for row, w in enumerate(layout.writers)}
    for r in top:
        r["top_frequency"] = rounded(np.mean(boot_top == row_of[r["index"]]))
        r["erasure_ci95"] = interval(boot_erasure[:, row_of[r["index"]]])
    tops, freq = np.unique(boot_top, return_counts=True)
    boot_tops = sorted(
        ({"name": layout.names[layout.writers[t]] if t >= 0 else None, "frequency": rounded(f / len(boot_top))}
         for t, f in zip(tops.tolist(), freq.tolist())),
        key=lambda x: -x["frequency"],
    )
    t_boot = time.perf_counter() - t0
    for r in top:
        r["erasers"], ranked = select_erasers(r, pair_q, layout, dp)
        r["most_negative"] = [{k: rounded(v) if k != "name" else v for k, v in x.items() if k != "index"}
                              for x in ranked[:N_MOST_NEGATIVE]]
    t0 = time.perf_counter()
    vcomp_pass(model, tokens[: dp.n_vcomp_prompts], layout, dp, top, sc.mean_out)
    t_vcomp = time.perf_counter() - t0
    for r in top:
        for e in r["erasers"]:
            e.pop("index")
            for k in ("median", "q25", "q75"):
                e[k] = rounded(e[k])
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
        "architecture": architecture(model),
        "n_prompts": n,
        "seq_len": p,
        "n_tokens": sc.n_tokens,
        "include_bos": dp.include_bos,
        "params": dp.rules(),
        "rules": RULES,
        "histogram": {
            "axis": "u = asinh(x / hist_scale), hist_bins equal bins on +-asinh(hist_max / hist_scale)",
            "quantile_error_bound": "one bin width: du * sqrt(x^2 + s^2) approximately",
            "error_bound_at": {str(x): rounded(hist.bin_width(x)) for x in (0.0, 0.03, 0.1, 0.3, 1.0, 10.0)},
        },
        "selected": sel,
        "bootstrap": {
            "n_draws": dp.n_bootstrap,
            "top_writer": top[0]["name"] if top else None,
            "top_writer_frequency": top[0]["top_frequency"] if top else None,
            "top_writers": boot_tops[:10],
        },
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
    return DiscoveryResult(
        record=result, layout=layout, pair_median=pair_q[1], writers=writers, top=top,
        timing_s={"scan": t_scan, "vcomp": t_vcomp, "bootstrap": t_boot},
        memory_bytes={"pair_hist": sc.pair.nbytes, "persist_hist": sc.persist.nbytes},
    )


def architecture(model: HookedTransformer) -> dict:
    """What a cross-model comparison needs to know of the model: its shape, norms and kind of positions."""
    cfg = model.cfg
    return {
        "n_layers": cfg.n_layers, "n_heads": cfg.n_heads, "n_key_value_heads": cfg.n_key_value_heads or cfg.n_heads,
        "d_model": cfg.d_model, "normalization_type": cfg.normalization_type,
        "post_norm": bool(cfg.use_normalization_before_and_after),
        "positional_embedding_type": cfg.positional_embedding_type,
    }


def _public(r: dict) -> dict:
    keys = ("name", "erasure", "erasure_final", "window", "min_checkpoint", "min_checkpoint_q75", "erasing_layer",
            "layer_drops", "rel_norm",
            "persistence", "persistence_q25", "persistence_q75", "erasers", "eraser_sum", "vcomp_layers",
            "most_negative", "subset", "top_frequency", "erasure_ci95", "erased_by")
    return {k: r.get(k) for k in keys}


def atlas_matrix(found: DiscoveryResult, rows: int) -> tuple[list[str], list[str], np.ndarray]:
    """(writer names, component names, median PR(c, w)) for the best `rows` writers (NaN where c does not read w)."""
    layout = found.layout
    chosen = found.writers[:rows]  # relevant writers by score, then the excluded ones by score
    mat = np.full((len(chosen), layout.n), np.nan)
    for i, r in enumerate(chosen):
        w = r["index"]
        for c in torch.nonzero(layout.after[w]).flatten().tolist():
            mat[i, c] = found.pair_median[layout.pair_index[(w, c)]]
    return [r["name"] + ("" if r["relevant"] else " *") for r in chosen], layout.names, mat
