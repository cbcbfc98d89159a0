"""What every figure shares: the file backend (Agg, set once here), the authors' seaborn look for Figs 1-3, the
percentile bands, and an atomic save (a failed stage leaves no half-written PNG)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt
import seaborn as sns

from erasure.io import atomic_path

__all__ = ["BANDS", "band_note", "bands_widest_first", "plt", "save", "seaborn_style"]

BANDS = {"25-75": ("q25", "q75"), "12.5-87.5": ("q12_5", "q87_5")}  # band -> (low, high) stats keys


def seaborn_style() -> None:
    """The authors' style for Figs 1-3: seaborn darkgrid, deep palette."""
    sns.set_theme(style="darkgrid", palette="deep")


def bands_widest_first(bands: list[str]) -> list[tuple[str, str, float]]:
    """(low key, high key, alpha) for each requested band, widest first so the narrow one is drawn on top."""
    alphas = {"12.5-87.5": 0.15, "25-75": 0.3}
    return [(*BANDS[b], alphas[b]) for b in ("12.5-87.5", "25-75") if b in bands]


def band_note(bands: list[str]) -> str:
    return "bands: " + ", ".join(f"{b} pct" for b in ("25-75", "12.5-87.5") if b in bands)


def save(fig, path: str | Path, dpi: int, tight_bbox: bool = False) -> None:
    """Write the figure as PNG to a temp file renamed onto `path`, then close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight" if tight_bbox else None)
    plt.close(fig)
