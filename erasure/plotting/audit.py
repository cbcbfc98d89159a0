"""The DLA audit's figures: one model's layer x head grid of repair share with its MLPs beside it and the most
repaired components' intervals (stage dla_audit), and repair share against relative depth for every model of the
sweep (stage compare)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from erasure.formatting import level_text
from erasure.mechanism.names import Component
from erasure.plotting.style import plt, save

N_INTERVALS = 10  # components whose intervals the right panel shows
DEPTH_YLIM = 2.0  # the depth figure's y range: shares beyond (early components of real models reach ~20) at its edge


def _share(row: dict) -> float:
    return np.nan if row["repair_share"] is None else float(row["repair_share"])


def plot_audit(record: dict, path: Path, dpi: int) -> None:
    """Left: repair share of every head (layer x head) and MLP (its own column); null shares grey. Right: the
    most repaired components' shares split into heads / MLPs / final norm, with their prompt-bootstrap interval."""
    comps = {Component.parse(name): row for name, row in record["components"].items()}
    n_layers = 1 + max(c.layer for c in comps)
    n_heads = 1 + max(c.head for c in comps if c.is_head)
    grid = np.full((n_layers, n_heads + 1), np.nan)
    for c, row in comps.items():
        grid[c.layer, c.head if c.is_head else n_heads] = _share(row)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 0.35 * n_layers + 3.2), width_ratios=[1.3, 1])
    lim = max(1.0, float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0)
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="#dddddd")
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-lim, vmax=lim, aspect="auto")
    ax.axvline(n_heads - 0.5, color="black", lw=1.5)
    ax.set_xticks(range(n_heads + 1), [str(h) for h in range(n_heads)] + ["MLP"], fontsize=7)
    ax.set_yticks(range(n_layers), [str(i) for i in range(n_layers)], fontsize=7)
    ax.set_xlabel("head (MLP: right of the line)")
    ax.set_ylabel("layer")
    ax.set_title("repair share per component (grey: null)", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.04)
    top = record["ranking"][:N_INTERVALS]
    rows = [record["components"][n] for n in top]
    y = np.arange(len(top))[::-1]
    left = np.zeros(len(top))
    for key, colour, label in (("heads_share", "#4c72b0", "other heads"), ("mlps_share", "#c44e52", "MLPs"),
                               ("ln_share", "#8c8c8c", "final norm scale")):
        vals = np.array([r[key] for r in rows], dtype=float)
        pos = np.where(vals > 0, vals, 0)
        bx.barh(y, pos, left=left, color=colour, height=0.6, label=label)
        left += pos
    for yi, r in zip(y, rows):
        neg = sum(min(r[k], 0.0) for k in ("heads_share", "mlps_share", "ln_share"))
        if neg < 0:
            bx.barh(yi, neg, color="#dddddd", height=0.6, hatch="//")
    share = np.array([r["repair_share"] for r in rows], dtype=float)
    err = np.vstack([share - [r["repair_share_low"] for r in rows], [r["repair_share_high"] for r in rows] - share])
    bx.errorbar(share, y, xerr=np.clip(err, 0, None), fmt="o", color="black", ms=3, capsize=3, label="repair share")
    bx.set_yticks(y, top, fontsize=8)
    bx.axvline(0, color="grey", lw=0.5)
    eraser = [(yi, r["eraser_share"]) for yi, r in zip(y, rows) if r.get("eraser_share") is not None]
    if eraser:
        bx.plot([e for _, e in eraser], [yi for yi, _ in eraser], "x", color="#dd8452", ms=7, mew=2,
                label="its erasers' share")
    bx.set_xlabel("share of the direct change (hatched: negative parts)")
    bx.set_title(f"most repaired ({level_text(record['bootstrap']['level'])} prompt-bootstrap intervals)",
                 fontsize=10)
    bx.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{record['model']}: DLA audit, {record['ablation']} ablation, {record['direction']} direction, top "
                 f"{100 * record['top_fraction']:g}% tokens by |direct change|", fontsize=10)
    fig.tight_layout()
    save(fig, path, dpi)


def plot_depth(audits: dict[str, dict], path: Path, dpi: int) -> None:
    """Repair share against relative depth, one panel per model (heads dots, MLPs squares, intervals)."""
    fig, axes = plt.subplots(1, max(1, len(audits)), figsize=(4.2 * max(1, len(audits)), 3.8), sharey=True,
                             squeeze=False)
    lim = DEPTH_YLIM
    for ax, (model, record) in zip(axes[0], audits.items()):
        ax.set_title(model, fontsize=10)
        ax.axhline(0, color="grey", lw=0.5)
        if record is None:
            ax.text(0.5, 0.5, "no audit in the sweep record", ha="center", va="center", transform=ax.transAxes,
                    color="grey")
            continue
        for is_head, marker, colour, label in ((True, "o", "#4c72b0", "heads"), (False, "s", "#c44e52", "MLPs")):
            rows = [r for n, r in record["components"].items()
                    if Component.parse(n).is_head == is_head and r["repair_share"] is not None]
            x = np.array([r["relative_depth"] for r in rows])
            s = np.array([r["repair_share"] for r in rows])
            err = np.vstack([s - [r["repair_share_low"] for r in rows], [r["repair_share_high"] for r in rows] - s])
            ax.errorbar(x, np.clip(s, -lim, lim), yerr=np.clip(err, 0, None), fmt=marker, color=colour, ms=3,
                        elinewidth=0.5, alpha=0.7, label=label)
            out = np.abs(s) > lim  # beyond the axis: drawn at its edge as an arrowhead
            ax.plot(x[out & (s > 0)], np.full((out & (s > 0)).sum(), lim), "^", color=colour, ms=5, ls="none")
            ax.plot(x[out & (s < 0)], np.full((out & (s < 0)).sum(), -lim), "v", color=colour, ms=5, ls="none")
        ax.set_xlabel("relative depth (0 input, 1 output)")
        ax.set_xlim(0, 1)
        ax.set_ylim(-lim * 1.05, lim * 1.05)
    axes[0][0].set_ylabel(f"repair share (clipped to ±{lim:g}: triangles)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("DLA audit across models: how much of each component's direct effect the rest of the model "
                 "undoes (95% prompt-bootstrap intervals)", fontsize=10)
    fig.tight_layout()
    save(fig, path, dpi)
