"""Paper Fig 4 drawn: the writer's DLA against its erasers' V-composition part, with the OLS line."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from erasure.analysis.fig4 import Fig4Result
from erasure.plotting.data import scatter_sample
from erasure.plotting.style import fmt, plain_text, plt, save


@plain_text
def plot_fig4(result: Fig4Result, path: str | Path, max_points: int, seed: int, writer: str, dpi: int) -> None:
    """Scatter of the paper version with its OLS line; at most max_points random points are drawn."""
    m = result.metrics["paper"]
    x, y = scatter_sample(result.x, result.y, max_points, seed)
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.scatter(x, y, s=4, alpha=0.25, color="C0", linewidths=0,
               label=f"(prompt, position) points ({x.size:,} of {m['n_points']:,} drawn)")
    if m["slope"] is not None:
        xs = np.linspace(float(result.x.min()), float(result.x.max()), 2)
        ax.plot(xs, m["slope"] * xs + m["intercept"], color="black", lw=1.5,
                label=f"OLS: slope {m['slope']:.3f}, intercept {m['intercept']:.3f}, r = {fmt(m['r'], '.3f')}")
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
    save(fig, path, dpi)
