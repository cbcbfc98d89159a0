"""Line fits of pooled (x, y) points: Pearson r and OLS, with percentile-bootstrap intervals that resample
prompts, because positions of one prompt are not independent."""
from __future__ import annotations

import numpy as np
from scipy import stats as sps

from erasure.errors import DataError
from erasure.mechanism.bootstrap import PromptBootstrap, add_interval


def fit_line(x: np.ndarray, y: np.ndarray) -> dict:
    """Pearson r and the OLS fit y = slope * x + intercept (scipy.stats.linregress) on the pooled points.

    Degenerate points give documented nulls, never NaN (docs/methods.md, "Undefined statistics"): with every x
    equal no line is defined (r, slope, intercept null); with every y equal the line is flat (slope 0) but r is
    undefined (null). `undefined` then says which and why.
    """
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if x.size < 3:
        raise DataError(f"a line fit needs at least 3 points, got {x.size}")
    if np.ptp(x) == 0:
        return {"r": None, "slope": None, "intercept": None,
                "undefined": f"every x equals {x[0]:.6g}: no line through the points"}
    res = sps.linregress(x, y)
    if np.ptp(y) == 0:
        return {"r": None, "slope": 0.0, "intercept": float(y[0]),
                "undefined": f"every y equals {y[0]:.6g}: r is undefined (no variation to correlate)"}
    return {"r": float(res.rvalue), "slope": float(res.slope), "intercept": float(res.intercept)}


def _fit_from_sums(s: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """r, slope, intercept from stacked sufficient statistics [n, Sx, Sy, Sxx, Syy, Sxy] of centred data."""
    n, sx, sy, sxx, syy, sxy = (s[..., i] for i in range(6))
    mx, my = sx / n, sy / n
    vxx, vyy, vxy = sxx - n * mx * mx, syy - n * my * my, sxy - n * mx * my
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = vxy / vxx
        r = vxy / np.sqrt(vxx * vyy)
    intercept = (my + cy) - slope * (mx + cx)
    return r, slope, intercept


def bootstrap_fit(x: np.ndarray, y: np.ndarray, boot: PromptBootstrap) -> dict:
    """Percentile-bootstrap intervals of (r, slope, intercept), resampling PROMPTS (rows) with replacement:
    {"r_low", "r_high", "slope_low", ...}.

    x, y: (n_prompts, n_positions). Points of one prompt are correlated (same text), so prompts, not points,
    are the independent units. Uses per-prompt sufficient statistics, so 1000 draws take milliseconds.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    cx, cy = float(x.mean()), float(y.mean())
    xc, yc = x - cx, y - cy
    per_prompt = np.stack(
        [np.full(x.shape[0], x.shape[1], np.float64), xc.sum(1), yc.sum(1),
         (xc * xc).sum(1), (yc * yc).sum(1), (xc * yc).sum(1)],
        axis=1,
    )
    draws = _fit_from_sums(boot.counts.astype(np.float64) @ per_prompt, cx, cy)
    out: dict = {}
    for name, d in zip(("r", "slope", "intercept"), draws):
        add_interval(out, name, d, boot.level)
    return out
