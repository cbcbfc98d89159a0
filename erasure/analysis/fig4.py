"""Paper Fig 4 (docs/methods.md §4.4): is the writer's DLA real, or erased downstream?

x = DLA(o) of the writer output o, y = DLA of the erasers' V-composition part (clean minus V-patched eraser
outputs), both on the clean model's top-2 logit difference at every position of the first `fig4.n_prompts`
prompts. If the erasers remove what the writer wrote, y ~ slope * x with a negative slope: the writer's DLA
overstates its effect on the logits. The authors' code (repo fig5) did something different, reported here as
`code_variant`. The points are the activations stage's (erasure.analysis.fig4_points, which says how each is
computed); here they are only selected and fitted, with numpy and scipy: no model, no torch.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from erasure.errors import DataError, ParamError
from erasure.mechanism.linefit import bootstrap_fit, fit_line
from erasure.mechanism.names import Component
from erasure.params.sections import Fig4
from erasure.paths import FIG4_POINTS

POINT_KEYS = ("writer", "vcomp", "erasers", "code_x", "code_y")


def position_mask(seq_len: int, positions: str) -> np.ndarray:
    """Boolean mask over positions: all | no_bos (drop 0) | no_bos_no_last (drop 0 and seq_len - 1)."""
    mask = np.ones(seq_len, dtype=bool)
    if positions in ("no_bos", "no_bos_no_last"):
        mask[0] = False
    if positions == "no_bos_no_last":
        mask[-1] = False
    if not mask.any():
        raise ParamError(f"fig4.positions = {positions!r} leaves no position for seq_len {seq_len}")
    return mask


def load_points(act_dir: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """data/activations' Fig 4 points and meta.json, or a DataError saying which stage to run."""
    act_dir = Path(act_dir)
    points_file, meta_file = act_dir / FIG4_POINTS, act_dir / "meta.json"
    if not points_file.exists() or not meta_file.exists():
        raise DataError(f"{points_file} or {meta_file} is missing: run `dvc repro activations`")
    try:
        with np.load(points_file, allow_pickle=False) as f:
            points = {k: f[k] for k in POINT_KEYS}
        return points, json.loads(meta_file.read_text())
    except Exception as err:  # a truncated/corrupt file: one line, not a traceback
        raise DataError(f"{act_dir} is unreadable ({type(err).__name__}: {err}): "
                        "rerun `dvc repro activations`") from None


def check_points(
    points: dict[str, np.ndarray], meta: dict, model_name: str, writer: Component, erasers: list[Component],
    settings: Fig4,
) -> None:
    """DataError unless the points have consistent shapes and are of this model, roles and Fig 4 settings."""
    if meta.get("model") != model_name:
        raise DataError(
            f"data/activations was computed for model {meta.get('model')!r} but params.yaml selects "
            f"{model_name!r}: rerun `dvc repro activations`"
        )
    if meta.get("writer") != writer.name or list(meta.get("erasers", [])) != [e.name for e in erasers]:
        raise DataError("data/activations was computed for another writer/eraser set: rerun `dvc repro activations`")
    fig4 = meta.get("fig4", {})
    code = fig4.get("code_variant", {})
    if (code.get("start_pos") != settings.code_variant.start_pos
            or code.get("n_prompts") != min(settings.code_variant.n_prompts, fig4.get("n_prompts", -1))
            or fig4.get("aligned_top_k") != settings.aligned_top_k):
        raise DataError("data/activations was computed with other fig4.code_variant / fig4.aligned_top_k params: "
                        "rerun `dvc repro activations`")
    n, p = fig4["n_prompts"], meta["seq_len"]
    for key in ("writer", "vcomp", "erasers"):
        if points[key].shape != (n, p):
            raise DataError(f"Fig 4 points {key} have shape {points[key].shape}, expected {(n, p)}")
    if points["code_x"].shape != points["code_y"].shape:
        raise DataError("Fig 4 code-variant points: x and y differ in length")


@dataclass
class Fig4Result:
    metrics: dict
    x: np.ndarray  # paper version, points used (flattened)
    y: np.ndarray


def fig4_metrics(
    points: dict[str, np.ndarray], meta: dict, settings: Fig4, model_name: str, writer: Component,
    erasers: list[Component],
) -> Fig4Result:
    """Every number of metrics/fig4_dla.json from the activations stage's points."""
    n_cache, p = points["writer"].shape
    n = min(settings.n_prompts, n_cache)
    if n < 2:
        raise DataError(f"fig4 needs at least 2 prompts in the DLA cache to bootstrap over prompts, got {n}")
    mask = position_mask(p, settings.positions)
    # C order, as the points were computed: numpy's masked copy would be Fortran-ordered, and its row sums
    # (the bootstrap's per-prompt statistics) would round differently
    x, y, y_full = (np.ascontiguousarray(points[k][:n][:, mask]) for k in ("writer", "vcomp", "erasers"))

    paper = fit_line(x, y)
    paper.update(bootstrap_fit(x, y, settings.n_bootstrap, settings.seed))
    paper.update({"n_points": int(x.size), "n_prompts": n, "positions": settings.positions})

    code_meta = meta["fig4"]["code_variant"]
    code = {"r": None, "slope": None, "intercept": None, "n_points": 0}
    if code_meta["has_heads"]:
        cx, cy = points["code_x"], points["code_y"]
        code = {**fit_line(cx, cy), "n_points": int(cx.size)}
    code.update({"n_prompts": code_meta["n_prompts"], "start_pos": code_meta["start_pos"]})

    metrics = {
        "model": model_name,
        "writer": writer.name,
        "erasers": [e.name for e in erasers],
        "paper": paper,
        "full_erasers": fit_line(x, y_full),
        "code_variant": code,
    }
    return Fig4Result(metrics=metrics, x=x.ravel(), y=y.ravel())
