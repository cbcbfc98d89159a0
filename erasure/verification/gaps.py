"""Where the paper and the authors' committed figure disagree (`figure_gaps` in paper/claims.yaml; Fig 1: 0.12 / 0.91
vs 0.10 / 0.88): is the gap within sampling noise for their prompt counts?

Suppose both numbers were measured like ours on independent prompt samples of n_paper and n_figure prompts. Our
interval gives our standard error se = (high - low) / (2 z), with z the normal quantile of the interval's level; a
statistic over prompts has se ~ 1/sqrt(prompts), so at n prompts se(n) = se * sqrt(n_ours / n). The difference of
the two runs then has standard error sqrt(se(n_paper)^2 + se(n_figure)^2), and the gap is within sampling noise
when |paper - figure| <= z * that + both roundings. Our spread describes the run's model only, so the question is
answered on the paper's model and NOT RUN on any other.
"""
from __future__ import annotations

import math
from statistics import NormalDist

from erasure.errors import ClaimError
from erasure.mechanism.names import interval_keys
from erasure.verification.claim_schema import is_number
from erasure.verification.metrics import Metrics, MissingMetric, split_key


def validate_gaps(registry: dict, where: str) -> None:
    """Each `figure_gaps` entry names a numeric claim and a `paper.authors_code` value with rounding and n_prompts."""
    claims = {c["id"]: c for c in registry["claims"]}
    paper = registry.get("paper") or {}
    authors = paper.get("authors_code") or {}
    if registry.get("figure_gaps") and not (is_number(paper.get("n_prompts")) and paper["n_prompts"] > 0):
        raise ClaimError(f"{where}: figure_gaps need paper.n_prompts, a positive number")
    for gap in registry.get("figure_gaps") or []:
        if not isinstance(gap, dict) or set(gap) != {"claim", "figure"}:
            raise ClaimError(f"{where}: a figure_gaps entry must be {{claim: ID, figure: NAME.PART}}, got {gap!r}")
        claim = claims.get(gap["claim"])
        if claim is None or not isinstance(claim["metric"], str) or "rounding" not in claim:
            raise ClaimError(f"{where}: figure_gaps names {gap['claim']!r}, not a claim with one numeric metric")
        figure = _figure(authors, gap["figure"])
        if figure is None:
            raise ClaimError(f"{where}: figure_gaps: paper.authors_code.{gap['figure']} must be a number whose mapping "
                             "also holds rounding and n_prompts")


def _figure(authors: dict, name: str) -> dict | None:
    """{value, rounding, n_prompts} of `paper.authors_code.<group>.<part>`, or None when malformed."""
    group, _, part = str(name).partition(".")
    values = authors.get(group)
    if not isinstance(values, dict) or not all(is_number(values.get(k)) for k in (part, "rounding", "n_prompts")):
        return None
    if values["rounding"] < 0 or values["n_prompts"] < 1:
        return None
    return {"value": float(values[part]), "rounding": float(values["rounding"]), "n_prompts": int(values["n_prompts"])}


def figure_gaps(registry: dict, metrics: Metrics, run_model: str) -> list[dict]:
    """One record per `figure_gaps` entry: the gap, the noise bound at the authors' prompt counts, and the verdict."""
    paper = registry.get("paper") or {}
    claims = {c["id"]: c for c in registry["claims"]}
    out = []
    for gap in registry.get("figure_gaps") or []:
        claim = claims[gap["claim"]]
        figure = _figure(paper.get("authors_code") or {}, gap["figure"])
        record = {"claim": claim["id"], "figure": gap["figure"], "paper_value": claim["paper_value"],
                  "figure_value": figure["value"], "gap": abs(claim["paper_value"] - figure["value"]),
                  "n_paper": paper.get("n_prompts"), "n_figure": figure["n_prompts"]}
        if run_model != claim["model"]:
            out.append({**record, "status": "NOT RUN", "reason": f"our spread is {run_model}'s; the question is about "
                                                                f"{claim['model']}"})
            continue
        try:
            record.update(_noise(claim, figure, paper, metrics))
        except MissingMetric as err:
            out.append({**record, "status": "NOT RUN", "reason": f"cannot evaluate: {err}"})
            continue
        within = record["gap"] <= record["noise"]
        out.append({**record, "status": "within noise" if within else "beyond noise", "reason": ""})
    return out


def _noise(claim: dict, figure: dict, paper: dict, metrics: Metrics) -> dict:
    file, _ = split_key(claim["metric"])
    low, high = (metrics.get(k) for k in interval_keys(claim["metric"]))
    n_ours, level = metrics.get(f"{file}:n_prompts"), metrics.get(f"{file}:bootstrap.level")
    if not all(is_number(v) and math.isfinite(v) for v in (low, high, n_ours, level)):
        raise MissingMetric(f"{file}: interval, n_prompts or bootstrap.level is not a number")
    n_paper = paper["n_prompts"]
    z = NormalDist().inv_cdf((1 + level) / 2)
    se = (high - low) / (2 * z)
    se_at = {n: se * math.sqrt(n_ours / n) for n in (n_paper, figure["n_prompts"])}
    noise = z * math.sqrt(se_at[n_paper] ** 2 + se_at[figure["n_prompts"]] ** 2)
    return {"interval": [low, high], "level": level, "n_ours": n_ours, "se_ours": se,
            "noise": noise + claim["rounding"] + figure["rounding"]}
