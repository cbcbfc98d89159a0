"""The numbers behind paper Figs 1-3, computed from the activation tables (docs/methods.md §4.1-4.3)."""
from __future__ import annotations

from erasure.analysis.tables import ActivationTables
from erasure.mechanism.names import Component
from erasure.mechanism.stats import summarize_pools


def _header(tables: ActivationTables) -> dict:
    meta = tables.meta
    return {
        "model": meta.model,
        "writer": meta.writer,
        "erasers": meta.erasers,
        "n_prompts": meta.n_prompts,
        "seq_len": meta.seq_len,
    }


def fig1_metrics(tables: ActivationTables) -> dict:
    """PR(resid_k, writer) at every checkpoint, clean vs patched, and the V-composition share of the erasure.

    vcomp_share = (PR_patched - PR_clean) / (PR_before - PR_clean) at resid_mid of the first patched layer, where
    PR_before is the clean median entering that layer: the fraction of that layer's erasure the patch undoes
    (the paper's "about 85%"; its formula is not in the authors' code, docs/methods.md §4.1.7).
    """
    meta = tables.meta
    checkpoints = {
        c: {run: summarize_pools(tables.resid(c, run)) for run in meta.runs} for c in meta.checkpoints
    }
    first = meta.patch_layers[0]
    after, before = f"resid_mid{first}", f"resid_post{first - 1}" if first > 0 else "resid_pre0"
    share = {}
    for pool in ("all", "no_bos"):
        clean = checkpoints[after]["clean"][pool]["median"]
        patched = checkpoints[after]["patched"][pool]["median"]
        entering = checkpoints[before]["clean"][pool]["median"]
        share[pool] = (patched - clean) / (entering - clean)
    return {
        **_header(tables),
        "checkpoints": checkpoints,
        "erasure_checkpoint": after,
        "entering_checkpoint": before,
        "vcomp_share": share,
    }


def fig2_metrics(tables: ActivationTables, negative_median: float) -> dict:
    """PR of every component onto the writer (writer excluded) and the per-token sum over the eraser set.

    `negative_heads` lists the heads of the erasers' layers whose median PR is below -negative_median: the
    data-driven eraser set the paper reads off Fig 2.
    """
    meta = tables.meta
    comps = [c for c in meta.components if c != meta.writer]
    components = {c: summarize_pools(tables.component(c, "clean")) for c in comps}
    eraser_sum = sum(tables.component(e, "clean").astype("float64") for e in meta.erasers)
    summed = summarize_pools(eraser_sum)
    layers = set(meta.patch_layers)
    negative = [
        c for c in comps
        if Component.parse(c).is_head and Component.parse(c).layer in layers
        and components[c]["all"]["median"] < -negative_median
    ]
    return {
        **_header(tables),
        "components": components,
        "eraser_sum": summed,
        "erasure_total_pct": {pool: -100.0 * summed[pool]["median"] for pool in summed},
        "negative_median_threshold": negative_median,
        "negative_heads": negative,
    }


def fig3_metrics(tables: ActivationTables) -> dict:
    """Every head of the patched layer(s): PR onto the writer, clean vs patched."""
    meta = tables.meta
    heads = [
        c for c in meta.components
        if Component.parse(c).is_head and Component.parse(c).layer in set(meta.patch_layers)
    ]
    return {
        **_header(tables),
        "heads": {h: {run: summarize_pools(tables.component(h, run)) for run in meta.runs} for h in heads},
    }
