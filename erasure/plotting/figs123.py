"""Paper Figs 1-3 drawn from their metrics dicts, in the authors' style (seaborn darkgrid, deep palette).

Lines and bars are medians; the dark band/whisker is the 25-75 percentile range the paper's captions state,
the light one the 12.5-87.5 range the authors' code drew (seaborn errorbar ("pi", 75)).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from erasure.mechanism.names import Component
from erasure.plotting.style import (
    band_note,
    bands_widest_first,
    not_applicable,
    plain_text,
    plt,
    save,
    seaborn_style,
)

RUN_COLOURS = {"clean": "C0", "patched": "C1"}
RUN_LABELS = {"clean": "Original", "patched": "V-composition patched"}


@plain_text
def fig1(metrics: dict, pool: str, bands: list[str], path: Path, dpi: int) -> None:
    seaborn_style()
    names = list(metrics["checkpoints"])
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(min(max(12, 0.3 * len(names)), 24), 6))
    runs = ("clean",) if metrics["vcomp_share"] is None else ("clean", "patched")  # None: no erasers, no patch
    for run in runs:
        stats = [metrics["checkpoints"][c][run][pool] for c in names]
        colour = RUN_COLOURS[run]
        ax.plot(x, [s["median"] for s in stats], marker="o", color=colour, label=RUN_LABELS[run])
        for lo, hi, alpha in bands_widest_first(bands):
            ax.fill_between(x, [s[lo] for s in stats], [s[hi] for s in stats], color=colour, alpha=alpha, lw=0)
    ax.axhline(0, color="black", lw=0.8)
    shown = labelled_checkpoints(names, [metrics.get("erasure_checkpoint"), metrics.get("entering_checkpoint")])
    ax.set_xticks(x, [n if n in shown else "" for n in names], rotation=45 if len(names) > 20 else 30, fontsize=10)
    ax.tick_params(axis="x", length=3)
    ax.set_ylabel(f"PR(resid, {metrics['writer']})", fontsize=13)
    ax.set_xlabel("residual stream checkpoint", fontsize=13)
    ax.set_title(
        f"Projection of the residual stream onto {metrics['writer']}'s output, median over tokens "
        f"({metrics['model']}; {band_note(bands)}; {pool.replace('_', ' ')})",
        fontsize=13,
    )
    ax.legend(title="Run")
    save(fig, path, dpi, tight_bbox=True)


def labelled_checkpoints(names: list[str], key: list[str | None], most: int = 14) -> set[str]:
    """The checkpoints whose tick gets a label: all of them up to `most`; in deeper models (SmolLM2: 61) the key ones
    first (where the writer's output is erased, where it enters the erasers' layer), then the first, the last and
    every k-th resid_post, each only if no label already stands within a few ticks of it, so the labels never
    overlap and at most about `most` remain."""
    if len(names) <= most:
        return set(names)
    posts = [n for n in names if n.startswith("resid_post")]
    step = -(-len(posts) // (most - 4))
    gap = -(-len(names) // (2 * most))  # ticks between two labels, at least
    chosen: list[int] = []
    for name in [k for k in key if k in names] + [names[0], names[-1]] + posts[::step]:
        i = names.index(name)
        if all(abs(i - j) >= gap for j in chosen):
            chosen.append(i)
    return {names[i] for i in chosen}


def _bar_panel(ax, labels, stats, colours, bands):
    x = np.arange(len(labels))
    ax.bar(x, [s["median"] for s in stats], color=colours)
    for lo, hi, _ in bands_widest_first(bands):
        low = [s["median"] - s[lo] for s in stats]
        high = [s[hi] - s["median"] for s in stats]
        width = 3 if lo == "q25" else 1.2
        ax.errorbar(x, [s["median"] for s in stats], yerr=[low, high], fmt="none", ecolor="black",
                    elinewidth=width, alpha=0.9 if lo == "q25" else 0.5, capsize=0)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, labels, rotation=90, fontsize=6 if len(labels) > 80 else 10)


@plain_text
def fig2(metrics: dict, pool: str, bands: list[str], layers: str, path: Path, dpi: int) -> None:
    """Bars for every component (layers after the writer only when layers == 'after_writer', as the paper)."""
    seaborn_style()
    writer_layer = Component.parse(metrics["writer"]).layer
    names = [c for c in metrics["components"] if layers == "all" or Component.parse(c).layer > writer_layer]
    stats = [metrics["components"][c][pool] for c in names]
    erasers = set(metrics["erasers"])
    colours = ["C3" if c in erasers else ("C2" if c.startswith("MLP") else "C0") for c in names]
    fig, ax = plt.subplots(figsize=(min(max(12, 0.3 * len(names)), 30), 5))
    _bar_panel(ax, names, stats, colours, bands)
    for i, name in enumerate(names[:-1]):
        if not Component.parse(name).is_head:
            ax.axvline(i + 0.5, color="black", ls="--", lw=1)
    total = metrics["eraser_sum"] and metrics["eraser_sum"][pool]  # None: no erasers
    summed = (f"eraser sum median {total['median']:.3f} [q25 {total['q25']:.3f}, q75 {total['q75']:.3f}]"
              if total else "no eraser set")
    ax.set_xlabel("component (red: eraser set, green: MLP)", fontsize=12)
    ax.set_ylabel(f"PR(component, {metrics['writer']})", fontsize=12)
    ax.set_title(
        f"Projection ratios of all components (except {metrics['writer']}) onto {metrics['writer']} "
        f"({metrics['model']}); {summed}",
        fontsize=13,
    )
    save(fig, path, dpi, tight_bbox=True)


@plain_text
def fig3(metrics: dict, pool: str, bands: list[str], path: Path, dpi: int) -> None:
    if not metrics["applicable"]:
        not_applicable(path, f"Fig 3: heads of the patched layer onto {metrics['writer']} ({metrics['model']})",
                       metrics["reason"], dpi)
        return
    seaborn_style()
    heads = list(metrics["heads"])
    erasers = set(metrics["erasers"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for ax, run in zip(axes, ("clean", "patched")):
        stats = [metrics["heads"][h][run][pool] for h in heads]
        colours = [RUN_COLOURS[run] if h in erasers else "0.6" for h in heads]
        _bar_panel(ax, heads, stats, colours, bands)
        ax.set_title(RUN_LABELS[run], fontsize=14)
        ax.tick_params(axis="x", labelsize=12)
    axes[0].set_ylabel(f"PR(head, {metrics['writer']})", fontsize=13)
    fig.suptitle(
        f"Heads of the patched layer onto {metrics['writer']} ({metrics['model']}; grey: not in the eraser set; "
        f"{band_note(bands)})",
        fontsize=13,
    )
    save(fig, path, dpi, tight_bbox=True)
