"""Plot data for `dvc plots`: what each figure draws, as table rows (written to plots/*.csv by the stages).

DVC draws them with its own templates (dvc.yaml `plots:` names x, y and the template of each), so
`dvc plots diff` of two experiments overlays the curves, bars and points instead of showing two PNGs. Rows are
read from the metrics dicts the PNGs are drawn from (nothing is computed here); tokens are shown readable
(`␣bottom`).
"""
from __future__ import annotations

import numpy as np

from erasure.mechanism.names import Component, display_token
from erasure.mechanism.stats import QUANTILES


def _stats(stats: dict, prefix: str = "") -> dict:
    return {f"{prefix}{q}": stats[q] for q in QUANTILES}


def fig1_rows(metrics: dict, pool: str) -> list[dict]:
    """One row per residual checkpoint (step 0 = resid_pre0): the clean and patched medians and percentiles."""
    rows = []
    for i, (name, stats) in enumerate(metrics["checkpoints"].items()):
        row = {"step": i, "checkpoint": name, "clean": stats["clean"][pool]["median"],
               "patched": stats["patched"][pool]["median"]}
        for run in ("clean", "patched"):
            row.update({f"{run}_{q}": stats[run][pool][q] for q in QUANTILES if q != "median"})
        rows.append(row)
    return rows


def fig2_rows(metrics: dict, pool: str, layers: str) -> list[dict]:
    """One row per component drawn in Fig 2 (the same `fig2.layers` selection), eraser set marked."""
    writer_layer = Component.parse(metrics["writer"]).layer
    erasers = set(metrics["erasers"])
    return [
        {"component": name, "role": "eraser" if name in erasers else ("mlp" if name.startswith("MLP") else "head"),
         **_stats(stats[pool])}
        for name, stats in metrics["components"].items()
        if layers == "all" or Component.parse(name).layer > writer_layer
    ]


FIG3_FIELDS = ["bar", "head", "run", "eraser", *QUANTILES]  # the header of plots/fig3_heads.csv (also with no rows)


def fig3_rows(metrics: dict, pool: str) -> list[dict]:
    """One row per (head of the patched layer, run): a bar labelled `L2H2 clean` / `L2H2 patched`."""
    return [
        {"bar": f"{head} {run}", "head": head, "run": run, "eraser": head in metrics["erasers"],
         **_stats(runs[run][pool])}
        for head, runs in metrics["heads"].items() for run in ("clean", "patched")
    ]


def scatter_sample(x: np.ndarray, y: np.ndarray, max_points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """At most max_points of the (x, y) points, drawn without replacement (seeded): Fig 4's PNG and plot data."""
    if x.size <= max_points:
        return x, y
    idx = np.random.default_rng(seed).choice(x.size, max_points, replace=False)
    return x[idx], y[idx]


FIG4_FIELDS = ["writer_dla", "vcomp_dla"]  # the header of plots/fig4_dla.csv (also with no points)


def fig4_rows(x: np.ndarray, y: np.ndarray) -> list[dict]:
    """The scatter points drawn in Fig 4: the writer's DLA and the erasers' V-composition part's DLA."""
    return [{"writer_dla": float(a), "vcomp_dla": float(b)} for a, b in zip(x, y)]


def fig5_rows(prompts: dict) -> list[dict]:
    """One row per (prompt, head, input): the clean DLA, and the resampled median with its percentiles."""
    rows = []
    for key, res in prompts.items():
        for head, h in res["heads"].items():
            role = "writer" if head == res["writer"] else (
                "comparison" if head == res["comparison_head"] else "auto")
            blank = {q: None for q in QUANTILES if q != "median"}
            rows.append({"bar": f"{key} {head} clean", "prompt": key, "head": head, "role": role, "input": "clean",
                         "dla": h["clean"], **blank})
            rows.append({"bar": f"{key} {head} resampled", "prompt": key, "head": head, "role": role,
                         "input": "resampled", "dla": h["resampled"]["median"],
                         **{q: h["resampled"][q] for q in blank}})
    return rows


def aligned_token_rows(top: list[dict]) -> list[dict]:
    """The tokens the writer's mean output boosts most, labelled readably with their id (labels stay unique)."""
    return [{"token": f"{display_token(t['token'])} ({t['id']})" if t["token"] else display_token("", t["id"]),
             "id": t["id"], "score": t["score"]} for t in top]


def writer_rows(ranking: list[dict]) -> list[dict]:
    """Discovery's ranking: every candidate writer's erasure score (excluded ones marked)."""
    return [{"writer": r["name"], "erasure": r["erasure"], "relevant": not r["excluded_by"]} for r in ranking]

