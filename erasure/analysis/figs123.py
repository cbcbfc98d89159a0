"""The numbers behind paper Figs 1-3, computed from the activation tables (docs/methods.md §4.1-4.3)."""
from __future__ import annotations

import numpy as np

from erasure.analysis.tables import ActivationTables
from erasure.mechanism.bootstrap import PromptBootstrap, add_interval, summarize_pools_with_intervals
from erasure.mechanism.names import Component
from erasure.params.sections import Stats

NO_ERASERS = "no erasers ({why}): nothing is patched, so the patched run equals the clean run"


def _header(tables: ActivationTables, not_applicable: dict[str, str] | None = None, whole: str | None = None) -> dict:
    """The record's first keys: model, roles, prompt set, and what does not apply. `applicable` false with a
    `reason`: the whole figure does not apply; `parts_not_applicable`: {key: reason} for keys set to null."""
    meta = tables.meta
    return {
        "model": meta.model,
        "writer": meta.writer,
        "erasers": meta.erasers,
        "roles_source": meta.roles_source,
        "roles_note": meta.roles_note,
        "n_prompts": meta.n_prompts,
        "seq_len": meta.seq_len,
        "applicable": whole is None,
        "reason": whole,
        "parts_not_applicable": not_applicable or {},
    }


def no_erasers_reason(tables: ActivationTables) -> str | None:
    """Why nothing was patched, or None when there are erasers."""
    meta = tables.meta
    if meta.erasers:
        return None
    return NO_ERASERS.format(why=meta.roles_note or "the model's entry names none")


def bootstrap_of(tables: ActivationTables, stats: Stats) -> PromptBootstrap:
    """The stage's resampled prompt sets (one set of draws for every statistic, so ratios are drawn coherently)."""
    return PromptBootstrap.of(tables.meta.n_prompts, stats)


def fig1_metrics(tables: ActivationTables, stats: Stats) -> dict:
    """PR(resid_k, writer) at every checkpoint, clean vs patched, and the V-composition share of the erasure.

    vcomp_share = (PR_patched - PR_clean) / (PR_before - PR_clean) at resid_mid of the first patched layer, where
    PR_before is the clean median entering that layer: the fraction of that layer's erasure the patch undoes
    (the paper's "about 85%"; its formula is not in the authors' code, docs/methods.md §4.1.7). Its interval
    takes the same ratio of the three medians in every bootstrap draw.
    """
    meta = tables.meta
    boot = bootstrap_of(tables, stats)
    checkpoints: dict = {c: {} for c in meta.checkpoints}
    draws: dict = {}
    for c in meta.checkpoints:
        for run in meta.runs:
            checkpoints[c][run], draws[c, run] = summarize_pools_with_intervals(tables.resid(c, run), boot)
    missing = no_erasers_reason(tables)
    if missing is not None:
        return {**_header(tables, {"vcomp_share": missing}), "bootstrap": boot.record(), "checkpoints": checkpoints,
                "erasure_checkpoint": None, "entering_checkpoint": None, "vcomp_share": None}
    first = meta.patch_layers[0]
    after, before = f"resid_mid{first}", f"resid_post{first - 1}" if first > 0 else "resid_pre0"
    share: dict = {}
    for pool in ("all", "no_bos"):
        parts = [(after, "patched"), (after, "clean"), (before, "clean")]
        patched, clean, entering = (checkpoints[c][run][pool]["median"] for c, run in parts)
        if entering == clean:  # no drop in PR to undo: the share is undefined (docs/methods.md)
            share[pool] = None
            share.setdefault("undefined", {})[pool] = (f"{before} and {after} (clean) have the same median "
                                                       f"PR {clean:.6g}: the layer erases nothing to undo")
        else:
            share[pool] = _share(patched, clean, entering)
        with np.errstate(invalid="ignore", divide="ignore"):  # a degenerate draw gives NaN, dropped from the interval
            add_interval(share, pool, _share(*(draws[key][pool]["median"] for key in parts)), boot.level)
    return {
        **_header(tables),
        "bootstrap": boot.record(),
        "checkpoints": checkpoints,
        "erasure_checkpoint": after,
        "entering_checkpoint": before,
        "vcomp_share": share,
    }


def _share(patched, clean, entering):
    """The fraction of the layer's drop in PR that the patch undoes (floats, or arrays of bootstrap draws)."""
    return (patched - clean) / (entering - clean)


def fig2_metrics(tables: ActivationTables, negative_median: float, stats: Stats) -> dict:
    """PR of every component onto the writer (writer excluded) and the per-token sum over the eraser set.

    `negative_heads` lists the heads of the erasers' layers whose median PR is below -negative_median: the
    data-driven eraser set the paper reads off Fig 2.
    """
    meta = tables.meta
    boot = bootstrap_of(tables, stats)
    comps = [c for c in meta.components if c != meta.writer]
    components = {c: summarize_pools_with_intervals(tables.component(c, "clean"), boot)[0] for c in comps}
    missing = no_erasers_reason(tables)
    summed = total_pct = None
    if missing is None:
        eraser_sum = sum(tables.component(e, "clean").astype("float64") for e in meta.erasers)
        summed, summed_draws = summarize_pools_with_intervals(eraser_sum, boot)
        total_pct = {pool: -100.0 * summed[pool]["median"] for pool in summed}
        for pool in summed:
            add_interval(total_pct, pool, -100.0 * summed_draws[pool]["median"], boot.level)
    layers = set(meta.patch_layers)
    negative = [
        c for c in comps
        if Component.parse(c).is_head and Component.parse(c).layer in layers
        and components[c]["all"]["median"] < -negative_median
    ]
    parts = {} if missing is None else {"eraser_sum": missing, "erasure_total_pct": missing}
    return {
        **_header(tables, parts),
        "bootstrap": boot.record(),
        "components": components,
        "eraser_sum": summed,
        "erasure_total_pct": total_pct,
        "negative_median_threshold": negative_median,
        "negative_heads": negative,
    }


def fig3_metrics(tables: ActivationTables, stats: Stats) -> dict:
    """Every head of the patched layer(s): PR onto the writer, clean vs patched."""
    meta = tables.meta
    boot = bootstrap_of(tables, stats)
    heads = [
        c for c in meta.components
        if Component.parse(c).is_head and Component.parse(c).layer in set(meta.patch_layers)
    ]
    return {
        **_header(tables, whole=no_erasers_reason(tables)),
        "bootstrap": boot.record(),
        "heads": {h: {run: summarize_pools_with_intervals(tables.component(h, run), boot)[0] for run in meta.runs}
                  for h in heads},
    }
