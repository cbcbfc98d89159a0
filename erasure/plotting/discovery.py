"""Discovery's figures, drawn from its cached results: the erasure atlas (median PR of every later component onto
each writer, data/discovery_atlas.npz) and the persistence curves of the top writers (metrics/discovery.json)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.colors import TwoSlopeNorm

from erasure.analysis.discovery.atlas import Atlas
from erasure.mechanism.names import checkpoint_names
from erasure.plotting.style import plain_text, plt, save


@plain_text
def plot_atlas(atlas: Atlas, path: str | Path, rows: int, dpi: int, title: str = "") -> None:
    """The best `rows` writers of the atlas."""
    names, cols, mat = atlas.writers[:rows], atlas.components, atlas.matrix[:rows]
    finite = np.abs(mat[np.isfinite(mat)])
    lim = float(min(max(np.quantile(finite, 0.99) if finite.size else 0.1, 0.05), 1.0))
    width = min(max(10.0, 4 + 0.12 * len(cols)), 26)
    fig, ax = plt.subplots(figsize=(width, 2 + 0.3 * max(len(names), 1)))
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="#dddddd")
    im = ax.imshow(np.ma.masked_invalid(mat), aspect="auto", cmap=cmap,
                   norm=TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim), interpolation="nearest")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    if len(cols) <= 60:
        ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=7)
    else:  # one tick per layer
        H = atlas.n_heads + 1
        ax.set_xticks([l * H for l in range(atlas.n_layers)], [f"L{l}H0" for l in range(atlas.n_layers)],
                      rotation=90, fontsize=7)
    for l in range(1, atlas.n_layers):
        ax.axvline(l * (atlas.n_heads + 1) - 0.5, color="k", lw=0.5, ls="--")
    ax.set_xlabel("later component c (grey: does not read w)")
    ax.set_ylabel("writer w (ranked by erasure;\n* = excluded by a relevance filter)")
    cb = fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01)
    cb.set_label(f"median PR(c, w) (clipped at ±{lim:.2g})")
    ax.set_title(title or "Erasure atlas: median PR(c, w) of each later component c onto writer w", fontsize=11)
    fig.tight_layout()
    save(fig, path, dpi)


@plain_text
def plot_persistence(record: dict, n_layers: int, path: str | Path, dpi: int, title: str = "") -> None:
    """The top writers of a discovery record (metrics/discovery.json) of a model with n_layers."""
    ckpts = checkpoint_names(n_layers)
    fig, ax = plt.subplots(figsize=(max(8, 0.22 * len(ckpts) + 4), 5))
    lo, hi = 0.0, 1.0
    for i, r in enumerate(record["writers"]):
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
    save(fig, path, dpi)
