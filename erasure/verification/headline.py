"""The run's DVC metrics: one small file per claim (and per planted check) in metrics/headline/, plus the counts.

`dvc metrics show` prints one row per file and one column per key, so rows that share their keys (`value`,
`low`, `high`, `status`) make a table a terminal can show; one file holding every claim would be a single row
thousands of characters wide. Each row holds the value this run measured for the claim's metric, whatever the
model (on planted-4l the paper's claims are NOT RUN, but their numbers still move with the params, so
`dvc exp show` and `dvc metrics diff` compare them), the interval `low`/`high` where the metrics file holds one
beside the value (`<key>_low`, `<key>_high`), and the verdict (its level is in the report: a column more would
not fit a terminal). A claim with several parts (`writer_present`) has
one row per part (`writer_present.resid_mid0`). Lists (eraser sets, tokens) stay in the metrics files and the
report: `dvc metrics` cannot show them.
"""
from __future__ import annotations

from typing import Any

from erasure.mechanism.names import interval_keys
from erasure.verification.claim_schema import is_number
from erasure.verification.metrics import Metrics, MissingMetric
from erasure.verification.verify import expand_planted


def _value(metrics: Metrics, key: str, env: dict) -> Any:
    """The metric's value when `dvc metrics` can show it (a number, bool or string), else None."""
    try:
        value = metrics.get(key, env)
    except MissingMetric:
        return None
    return value if is_number(value) or isinstance(value, (bool, str)) else None


def _row(metrics: Metrics, key: str | None, env: dict, status: str) -> dict:
    row: dict[str, Any] = {}
    if key is not None:
        value = _value(metrics, key, env)
        if value is not None:
            row["value"] = value
        for side, bound_key in zip(("low", "high"), interval_keys(key)):
            bound = _value(metrics, bound_key, env)
            if is_number(bound):
                row[side] = bound
    row["status"] = status
    return row


def _rows_of(name: str, entry: dict, env: dict, status: str, metrics: Metrics) -> dict[str, dict]:
    metric = entry.get("metric")
    if isinstance(metric, dict):
        return {f"{name}.{part}": _row(metrics, key, env, status) for part, key in metric.items()}
    return {name: _row(metrics, metric, env, status)}


def headline_rows(report: dict, registry: dict, metrics: Metrics, truth: Any = None) -> dict[str, dict]:
    """{row name: row}: `_claims` and (on planted-4l) `_planted` hold the counts, then one row per claim or part,
    then one per planted check (a loop over the planted truth gives `planted_eraser_median.L2H2`)."""
    summary = report["summary"]
    rows: dict[str, dict] = {"_claims": {k: summary["claims"][k] for k in ("pass", "fail", "not_run")}}
    if summary["planted"]["total"]:
        rows["_planted"] = {k: summary["planted"][k] for k in ("pass", "fail", "not_run")}
    status = {r["id"]: r["status"] for r in report["claims"] + report["planted"]}
    for entry in registry["claims"]:
        rows.update(_rows_of(entry["id"], entry, {}, status[entry["id"]], metrics))
    if report["planted"]:
        for entry, env, rid, _ in expand_planted(registry, truth):
            name = rid.replace("[", ".").rstrip("]")
            rows.update(_rows_of(name, entry, {**env, "__truth__": truth}, status[rid], metrics))
    return rows
