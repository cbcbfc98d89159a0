"""The cross-model comparison figure: one panel per model, its top writers' erasure, who erases them, and the
V-composition share of their erasers, each with its prompt-bootstrap interval (metrics/comparison.json)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from erasure.mechanism.names import interval_keys
from erasure.plotting.style import plain_text, plt, save

BARS = (  # (key, label, colour); its interval is at `<key>_low`, `<key>_high`
    ("erasure", "erased within the window", "#4c72b0"),
    ("erased_by_heads", "... by heads", "#55a868"),
    ("erased_by_mlps", "... by MLPs", "#c44e52"),
    ("vcomp_share", "erasers' V-composition share", "#8172b3"),
)


def _value(x) -> float:
    return np.nan if x is None else float(x)


@plain_text
def plot_comparison(result: dict, path: Path, dpi: int, truth_erasure: float | None = None) -> None:
    """Grouped bars per top writer, one panel per model; the control panel marks the planted total erasure."""
    models = result["models"]
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 4.2), sharey=True, squeeze=False)
    width = 0.8 / len(BARS)
    for ax, m in zip(axes[0], models):
        if not m["ran"]:
            ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes, color="grey")
            ax.set_title(m["model"], fontsize=10)
            ax.set_xticks([])
            continue
        writers = m["writers"]
        x = np.arange(len(writers))
        for j, (key, label, colour) in enumerate(BARS):
            low, high = interval_keys(key)
            vals = np.array([_value(w[key]) for w in writers])
            lo = np.array([_value(w[low]) for w in writers])
            hi = np.array([_value(w[high]) for w in writers])
            err = np.vstack([np.clip(vals - lo, 0, None), np.clip(hi - vals, 0, None)])
            ax.bar(x + (j - 1.5) * width, np.nan_to_num(vals), width, yerr=np.nan_to_num(err), capsize=2,
                   color=colour, label=label)
        ticks = [f"{w['name']}\ntop in {100 * _value(w['top_frequency']):.0f}%" for w in writers]
        ax.set_xticks(x, ticks)
        if m["model"] == (result.get("control") or {}).get("model") and truth_erasure is not None:
            ax.axhline(truth_erasure, ls="--", color="black", lw=1, label="planted total erasure")
        verdict = "gelu-4l-like erasure" if m["gelu4l_like"] else "no gelu-4l-like erasure"
        ax.set_title(f"{m['model']} ({m['positions']} positions)\n{verdict}", fontsize=10)
        ax.axhline(0, color="grey", lw=0.5)
    axes[0][0].set_ylabel("fraction (median over tokens)\nerased: of the writer's output; share: of the erasure")
    handles, labels = [], []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle("Top writers per model: how much is erased, by whom, through V-composition "
                 f"(error bars: {result['ci_level']:g}% prompt-bootstrap intervals)", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 0.95))
    save(fig, path, dpi)
