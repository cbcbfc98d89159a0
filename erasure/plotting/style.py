"""What every figure shares: the file backend (Agg, set once here), the authors' seaborn look for Figs 1-3, the
percentile bands, and the save (into the temp of a stage's output set, erasure.io.OutputSet: a failed stage
leaves no half-written PNG and no new PNG beside old metrics)."""
from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt
from cycler import cycler

__all__ = ["BANDS", "band_note", "bands_widest_first", "fmt", "plain_text", "plt", "save", "seaborn_style"]

BANDS = {"25-75": ("q25", "q75"), "12.5-87.5": ("q12_5", "q87_5")}  # band -> (low, high) stats keys


# What seaborn's set_theme(style="darkgrid", palette="deep") sets (tests/plotting/test_style.py compares it with
# seaborn itself), written out: importing seaborn (and the scipy.stats it loads) costs each figure stage ~1.5 s.
SEABORN_DARKGRID_DEEP = {
    "axes.axisbelow": True, "axes.edgecolor": "white", "axes.facecolor": "#EAEAF2", "axes.grid": True,
    "axes.labelcolor": ".15", "axes.labelsize": 12.0, "axes.linewidth": 1.25, "axes.titlesize": 12.0,
    "axes.prop_cycle": cycler(color=["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3",
                                     "#8c8c8c", "#ccb974", "#64b5cd"]),
    "font.sans-serif": ["Arial", "DejaVu Sans", "Liberation Sans", "Bitstream Vera Sans", "sans-serif"],
    "font.size": 12.0, "grid.color": "white", "grid.linewidth": 1.0, "legend.fontsize": 11.0,
    "legend.title_fontsize": 12.0, "lines.solid_capstyle": "round", "patch.edgecolor": "w",
    "patch.force_edgecolor": True, "text.color": ".15", "xtick.bottom": False, "xtick.color": ".15",
    "xtick.labelsize": 11.0, "xtick.major.size": 6.0, "xtick.major.width": 1.25, "xtick.minor.size": 4.0,
    "xtick.minor.width": 1.0, "ytick.color": ".15", "ytick.labelsize": 11.0, "ytick.left": False,
    "ytick.major.size": 6.0, "ytick.major.width": 1.25, "ytick.minor.size": 4.0, "ytick.minor.width": 1.0,
}


def seaborn_style() -> None:
    """The authors' style for Figs 1-3: seaborn darkgrid, deep palette."""
    matplotlib.rcParams.update(SEABORN_DARKGRID_DEEP)


def bands_widest_first(bands: list[str]) -> list[tuple[str, str, float]]:
    """(low key, high key, alpha) for each requested band, widest first so the narrow one is drawn on top."""
    alphas = {"12.5-87.5": 0.15, "25-75": 0.3}
    return [(*BANDS[b], alphas[b]) for b in ("12.5-87.5", "25-75") if b in bands]


def band_note(bands: list[str]) -> str:
    return "bands: " + ", ".join(f"{b} pct" for b in ("25-75", "12.5-87.5") if b in bands)


def plain_text(draw: Callable) -> Callable:
    """A drawing function whose texts are never read as mathtext: titles and labels carry data (token strings,
    prompt text, names), and a `$` in them made matplotlib parse -- and on `$\\frac$` fail on -- plain text. No
    figure here uses mathtext. The setting holds while `draw` runs (it creates, lays out and saves its figure)."""
    @functools.wraps(draw)
    def drawn(*args: Any, **kwargs: Any) -> Any:
        with plt.rc_context({"text.parse_math": False}):
            return draw(*args, **kwargs)
    return drawn


def save(fig, path: str | Path, dpi: int, tight_bbox: bool = False) -> None:
    """Write the figure as PNG to `path` (a stage passes its output's temp: erasure.io.OutputSet), then close it."""
    try:
        fig.savefig(path, format="png", dpi=dpi, bbox_inches="tight" if tight_bbox else None)
    finally:
        plt.close(fig)


def fmt(value: float | None, spec: str) -> str:
    """A number formatted for a label, or `undefined` for a documented null (docs/methods.md)."""
    return "undefined" if value is None else format(value, spec)


@plain_text
def not_applicable(path: str | Path, title: str, reason: str, dpi: int) -> None:
    """The figure's file when it does not apply to this run: its title and why, so the paper shows the reason."""
    import textwrap

    fig, ax = plt.subplots(figsize=(7.2, 2.2))
    ax.axis("off")
    ax.text(0.0, 1.0, title, fontsize=11, weight="bold", va="top", transform=ax.transAxes)
    ax.text(0.0, 0.72, "Does not apply to this run: " + "\n".join(textwrap.wrap(reason, 90)), fontsize=9,
            va="top", transform=ax.transAxes)
    save(fig, path, dpi)
