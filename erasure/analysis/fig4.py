"""Paper Fig 4 (docs/methods.md §4.4): is the writer's DLA real, or erased downstream?

x = DLA(o) of the writer output o, y = DLA of the erasers' V-composition part (clean minus V-patched eraser
outputs), both on the clean model's top-2 logit difference at every position of the first `fig4.n_prompts`
prompts. If the erasers remove what the writer wrote, y ~ slope * x with a negative slope: the writer's DLA
overstates its effect on the logits. The authors' code (repo fig5) did something different, reported here as
`code_variant`. The points are the activations stage's (erasure.analysis.fig4_points, which says how each is
computed); here they are only selected and fitted, with numpy and scipy: no model, no torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from erasure.analysis.tables import REMEDY
from erasure.errors import DataError, ParamError
from erasure.mechanism.bootstrap import PromptBootstrap
from erasure.mechanism.linefit import bootstrap_fit, fit_line
from erasure.mechanism.names import Component
from erasure.params.load import Params
from erasure.params.sections import Fig4, Stats
from erasure.paths import ACTIVATIONS_DIR, FIG4_POINTS
from erasure.schemas import PointsMeta, read_record

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


def load_points(act_dir: str | Path = ACTIVATIONS_DIR) -> tuple[dict[str, np.ndarray], PointsMeta]:
    """data/activations' Fig 4 points and meta.json (typed), or a DataError saying which stage to run."""
    act_dir = Path(act_dir)
    meta_file, points_file = act_dir / "meta.json", act_dir / FIG4_POINTS
    meta = read_record(meta_file, PointsMeta, REMEDY if meta_file.exists() else "run `dvc repro activations` first")
    if not points_file.exists():
        raise DataError(f"{points_file} not found: run `dvc repro activations` first")
    try:
        with np.load(points_file, allow_pickle=False) as f:
            missing = [k for k in POINT_KEYS if k not in f.files]
            points = {k: f[k] for k in POINT_KEYS if k in f.files}
    except Exception as err:  # numpy raises several types on a truncated/corrupt file: one line
        raise DataError(f"{points_file} is unreadable ({type(err).__name__}: {err}): {REMEDY}") from None
    if missing:
        raise DataError(f"{points_file} lacks {', '.join(missing)}: {REMEDY}")
    return points, meta


def tables_roles(params: Params, meta: PointsMeta) -> tuple[Component, list[Component]]:
    """The writer and erasers Fig 4 is about: the entry's when it names them (check_points then refuses tables made
    for others), else those the activations stage chose and recorded in meta.json (erasure.analysis.roles)."""
    entry = params.entry
    if entry.writer != "auto" and entry.erasers != "auto":
        return entry.writer, list(entry.erasers)
    return Component.parse(meta.writer, "meta.json writer"), [Component.parse(e, "meta.json erasers")
                                                               for e in meta.erasers]


def check_points(
    points: dict[str, np.ndarray], meta: PointsMeta, model_name: str, writer: Component, erasers: list[Component],
    settings: Fig4, act_dir: str | Path = ACTIVATIONS_DIR,
) -> None:
    """DataError unless the points have consistent shapes, finite values, and are of this model, roles and Fig 4
    settings."""
    where = Path(act_dir) / FIG4_POINTS
    if meta.model != model_name:
        raise DataError(f"{act_dir} was computed for model {meta.model!r} but params.yaml selects {model_name!r}: "
                        f"{REMEDY}")
    if meta.writer != writer.name or list(meta.erasers) != [e.name for e in erasers]:
        raise DataError(f"{act_dir} was computed for another writer/eraser set: {REMEDY}")
    fig4, code = meta.fig4, meta.fig4.code_variant
    if (code.start_pos != settings.code_variant.start_pos
            or code.n_prompts != min(settings.code_variant.n_prompts, fig4.n_prompts)
            or fig4.aligned_top_k != settings.aligned_top_k):
        raise DataError(f"{act_dir} was computed with other fig4.code_variant / fig4.aligned_top_k params: {REMEDY}")
    n, p = fig4.n_prompts, meta.seq_len
    for key in ("writer", "vcomp", "erasers"):
        if points[key].shape != (n, p):
            raise DataError(f"{where}: {key} has shape {points[key].shape}, expected {(n, p)}: {REMEDY}")
    if points["code_x"].shape != points["code_y"].shape:
        raise DataError(f"{where}: code_x and code_y differ in length: {REMEDY}")
    for key in POINT_KEYS:
        bad = int((~np.isfinite(points[key])).sum())
        if bad:
            raise DataError(f"{where}: {key} holds {bad} NaN/inf values; the points must be finite: {REMEDY}")


@dataclass
class Fig4Result:
    metrics: dict
    x: np.ndarray  # paper version, points used (flattened)
    y: np.ndarray


def fig4_metrics(
    points: dict[str, np.ndarray], meta: PointsMeta, settings: Fig4, stats: Stats, model_name: str,
    writer: Component, erasers: list[Component],
) -> Fig4Result:
    """Every number of metrics/fig4_dla.json from the activations stage's points; the fits of the paper's version
    and of the full erasers get prompt-bootstrap intervals (`r_low`, `r_high`, ...)."""
    n_cache, p = points["writer"].shape
    n = min(settings.n_prompts, n_cache)
    header = {"model": model_name, "writer": writer.name, "erasers": [e.name for e in erasers],
              "roles_source": meta.roles_source, "roles_note": meta.roles_note}
    if not erasers:
        why = meta.roles_note or "the model's entry names none"
        reason = f"no erasers ({why}): there is no eraser output whose DLA could be set against the writer's"
        metrics = {**header, "applicable": False, "reason": reason, "parts_not_applicable": {},
                   "bootstrap": None, "paper": None, "full_erasers": None, "code_variant": None}
        return Fig4Result(metrics=metrics, x=np.zeros(0, np.float32), y=np.zeros(0, np.float32))
    if n < 2:
        raise DataError(f"fig4 needs at least 2 prompts in the DLA cache to bootstrap over prompts, got {n}")
    mask = position_mask(p, settings.positions)
    # C order, as the points were computed: numpy's masked copy would be Fortran-ordered, and its row sums
    # (the bootstrap's per-prompt statistics) would round differently
    x, y, y_full = (np.ascontiguousarray(points[k][:n][:, mask]) for k in ("writer", "vcomp", "erasers"))

    boot = PromptBootstrap.of(n, stats)
    paper = {**fit_line(x, y), **bootstrap_fit(x, y, boot)}
    paper.update({"n_points": int(x.size), "n_prompts": n, "positions": settings.positions})

    code_meta = meta.fig4.code_variant
    code = {"r": None, "slope": None, "intercept": None, "n_points": 0}
    parts = {}
    if code_meta.has_heads:
        cx, cy = points["code_x"], points["code_y"]
        code = {**fit_line(cx, cy), "n_points": int(cx.size)}
    else:
        parts["code_variant"] = ("no head among the erasers: the authors' variant pushes the writer through the "
                                 "erasers' OV circuits, which only heads have")
    code.update({"n_prompts": code_meta.n_prompts, "start_pos": code_meta.start_pos})

    metrics = {
        **header,
        "applicable": True,
        "reason": None,
        "parts_not_applicable": parts,
        "bootstrap": boot.record(),
        "paper": paper,
        "full_erasers": {**fit_line(x, y_full), **bootstrap_fit(x, y_full, boot)},
        "code_variant": code,
    }
    return Fig4Result(metrics=metrics, x=x.ravel(), y=y.ravel())
