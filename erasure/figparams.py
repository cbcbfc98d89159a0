"""Validation of the plot params shared by the figure stages."""
from __future__ import annotations

from erasure.config import Params, ParamError, require_choice, require_int
from erasure.plotting import BANDS


def plot_params(params: Params, section: str) -> dict:
    """The section's params after checking bands and dpi; pool comes from stats.headline."""
    cfg = params.section(section)
    bands = cfg.get("bands")
    if not isinstance(bands, list) or not bands:
        raise ParamError(f"{section}.bands = {bands!r} is not allowed: must be a non-empty list of {', '.join(BANDS)}")
    for band in bands:
        require_choice(band, f"{section}.bands", list(BANDS))
    require_int(cfg.get("dpi"), f"{section}.dpi", 50, 600)
    return {**cfg, "pool": params.raw["stats"]["headline"]}
