"""The whole discovery: scan, rank, select erasers, test them; the discovery.json record and the atlas matrix."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Int
from transformer_lens import HookedTransformer

from erasure.analysis.clean_pass import clean_pass
from erasure.analysis.discovery.atlas import Atlas
from erasure.analysis.discovery.layout import Layout, component_outputs, output_hooks
from erasure.analysis.discovery.ranking import (
    bootstrap_ranking,
    rank_writers,
    rounded,
    select_erasers,
    window_series,
)
from erasure.analysis.discovery.scan import Scanner
from erasure.analysis.discovery.vcomp_pass import patch_layers_of, recompute_subset, subset_hooks, vcomp_pass
from erasure.mechanism.bootstrap import PromptBootstrap, add_interval
from erasure.params.sections import Discovery, Stats


@dataclass
class DiscoveryResult:
    """What discovery found: the discovery.json record, and what the atlas is made of."""

    record: dict  # metrics/discovery.json
    layout: Layout
    pair_median: np.ndarray  # median PR(c, w) of every (writer, later component) pair
    writers: list[dict]  # every writer: relevant ones by score, then the excluded ones by score


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
    "bootstrap": "the prompt bootstrap of every interval (erasure.mechanism.bootstrap): the scanned prompts (the "
                 "V-comp subset's, for its numbers) resampled with replacement stats.n_bootstrap times (seed "
                 "stats.bootstrap_seed), pooled-token quantiles recomputed exactly (linear interpolation); "
                 "<key>_low, <key>_high: the central stats.level of the draws",
    "selection_frequency": "share of the resamples whose best relevant writer (rank_writers' rules on the "
                           "resample) is this writer: `top_frequency` of each top writer; `writers`: every writer "
                           "that is best in some resample (at most 10, most frequent first; null: none relevant)",
}


class DiscoveryPass:
    """Discovery's part of the clean pass (erasure.analysis.clean_pass): the scan of the first `n_prompts`
    prompts, and the clean hooks of the V-composition subset kept for `conclude` when `keep_subset` (the hooks
    the outputs are made of, 3-4x smaller than the outputs; `conclude` makes them again, the same numbers)."""

    def __init__(self, model: HookedTransformer, dp: Discovery, stats: Stats, n: int, seq_len: int,
                 keep_subset: bool):
        self.model, self.dp, self.stats = model, dp, stats
        self.layout = Layout(model.cfg.n_layers, model.cfg.n_heads)
        self.n_scan = n if dp.n_prompts is None else min(dp.n_prompts, n)
        self.n_subset = min(dp.n_vcomp_prompts, self.n_scan)
        self.seq_len = seq_len
        keep, self.columns = window_series(self.layout, dp)
        self.scanner = Scanner(model, self.layout, dp, self.n_scan, seq_len, keep)
        self.keep_subset = keep_subset
        self.subset_names = subset_hooks(range(model.cfg.n_layers)) | output_hooks(model, self.layout)
        self.kept: list[dict[str, torch.Tensor]] = []
        self.seconds: dict[str, float] = {}  # conclude's parts: the bootstrap, the V-composition test

    def names_for(self, start: int) -> set[str]:
        if start >= self.n_scan:
            return set()
        keep = self.keep_subset and start < self.n_subset
        return self.scanner.names | (self.subset_names if keep else set())

    def add(self, start: int, batch: torch.Tensor, store: dict[str, torch.Tensor]) -> None:
        if start >= self.n_scan:
            return
        k = min(len(batch), self.n_scan - start)
        if k < len(batch):
            store = {name: t[:k] for name, t in store.items()}
        self.scanner.add(store)
        if self.keep_subset and start < self.n_subset:
            j = min(k, self.n_subset - start)
            self.kept.append({name: store[name][:j] for name in self.subset_names})

    def conclude(
        self, tokens: Int[torch.Tensor, "n p"], batch_size: int, model_name: str = "",
        params_writer: str | None = None, params_erasers: list[str] | None = None,
    ) -> DiscoveryResult:
        """Rank, select, V-composition test (on the kept subset, or running it again): the discovery record."""
        model, dp, layout = self.model, self.dp, self.layout
        sc = self.scanner.result()
        writers, pair_q = rank_writers(sc, layout, dp)
        relevant = [r for r in writers if r["relevant"]]
        top = relevant[: dp.top_writers]
        t0 = time.perf_counter()
        st = self.stats
        boot = PromptBootstrap.of(self.n_scan, st)
        boot_top, boot_erasure = bootstrap_ranking(sc, layout, dp, self.columns, boot)
        row_of = {w: row for row, w in enumerate(layout.writers)}
        for r in top:
            r["top_frequency"] = rounded(np.mean(boot_top == row_of[r["index"]]))
            add_interval(r, "erasure", boot_erasure[:, row_of[r["index"]]], boot.level)
        tops, freq = np.unique(boot_top, return_counts=True)
        boot_tops = sorted(
            ({"name": layout.names[layout.writers[t]] if t >= 0 else None, "frequency": rounded(f / len(boot_top))}
             for t, f in zip(tops.tolist(), freq.tolist())),
            key=lambda x: -x["frequency"],
        )
        self.seconds["bootstrap"] = time.perf_counter() - t0
        for r in top:
            r["erasers"], ranked = select_erasers(r, pair_q, layout, dp)
            r["most_negative"] = [{k: rounded(v) if k != "name" else v for k, v in x.items() if k != "index"}
                                  for x in ranked[:N_MOST_NEGATIVE]]
        if self.keep_subset:
            subset = ((component_outputs(model, store, layout), store) for store in self.kept)
        else:
            layers = sorted({l for ls in patch_layers_of(top, layout).values() for l in ls})
            subset = recompute_subset(model, tokens[: self.n_subset], layout, batch_size, layers)
        t0 = time.perf_counter()
        subset_boot = PromptBootstrap.of(self.n_subset, st)
        vcomp_pass(model, subset, self.n_subset, layout, dp, subset_boot, top, sc.mean_out)
        self.seconds["vcomp"] = time.perf_counter() - t0
        self.kept = []
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
        result = {
            "model": model_name,
            "architecture": architecture(model),
            "n_prompts": self.n_scan,
            "seq_len": self.seq_len,
            "n_tokens": sc.n_tokens,
            "include_bos": dp.include_bos,
            "params": dp.rules(batch_size),
            "rules": RULES,
            "histogram": {
                "axis": "u = asinh(x / hist_scale), hist_bins equal bins on +-asinh(hist_max / hist_scale)",
                "quantile_error_bound": "one bin width: du * sqrt(x^2 + s^2) approximately",
                "error_bound_at": {str(x): rounded(hist.bin_width(x)) for x in (0.0, 0.03, 0.1, 0.3, 1.0, 10.0)},
            },
            "selected": sel,
            "bootstrap": boot.record(),
            "selection_frequency": {
                "top_writer": top[0]["name"] if top else None,
                "top_writer_frequency": top[0]["top_frequency"] if top else None,
                "writers": boot_tops[:10],
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
        return DiscoveryResult(record=result, layout=layout, pair_median=pair_q[1], writers=writers)


def subset_nbytes(model: HookedTransformer, dp: Discovery, n: int, seq_len: int) -> int:
    """Bytes of the V-composition subset kept from the clean pass, for min(n_vcomp_prompts, n) prompts: per layer
    and token the head hooks (z, and the post-attention norm's scale where there is one), hook_mlp_out and the
    `subset_hooks` (the residual entering the layer, ln1's scale)."""
    cfg = model.cfg
    n_sub = min(dp.n_vcomp_prompts, n if dp.n_prompts is None else min(dp.n_prompts, n))
    per_token = cfg.n_layers * (cfg.n_heads * cfg.d_head + 2 * cfg.d_model + 2)
    return n_sub * seq_len * per_token * torch.empty((), dtype=cfg.dtype).element_size()


def discover(
    model: HookedTransformer,
    tokens: Int[torch.Tensor, "n p"],
    dp: Discovery,
    stats: Stats,
    batch_size: int,
    model_name: str = "",
    params_writer: str | None = None,
    params_erasers: list[str] | None = None,
    keep_subset: bool = True,
) -> DiscoveryResult:
    """Discovery alone: its own clean pass over `tokens`, then `conclude` (the activations stage shares the
    pass with the tables instead: erasure.analysis.passes)."""
    n, p = tokens.shape
    found = DiscoveryPass(model, dp, stats, n, p, keep_subset)
    clean_pass(model, tokens, batch_size, [found], desc="discover: scan")
    return found.conclude(tokens, batch_size, model_name, params_writer, params_erasers)


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
            "most_negative", "subset", "top_frequency", "erasure_low", "erasure_high", "erased_by")
    return {k: r.get(k) for k in keys}


def atlas_of(found: DiscoveryResult) -> Atlas:
    """Median PR(c, w) of every later component onto every writer, writers ranked (NaN where c does not read w)."""
    layout = found.layout
    mat = np.full((len(found.writers), layout.n), np.nan)
    for i, r in enumerate(found.writers):  # relevant writers by score, then the excluded ones by score
        w = r["index"]
        for c in torch.nonzero(layout.after[w]).flatten().tolist():
            mat[i, c] = found.pair_median[layout.pair_index[(w, c)]]
    names = [r["name"] + ("" if r["relevant"] else " *") for r in found.writers]
    return Atlas(names, layout.names, mat, layout.n_layers, layout.n_heads)
