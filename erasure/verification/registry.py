"""The claims registry (`paper/claims.yaml`): loading and validation (its schema: claim_schema.py), and which
metric keys each entry reads.

A claim names the metric that reproduces it as `file:dotted.key` (e.g.
`metrics/fig1_resid.json:checkpoints.resid_mid2.clean.all.median`). A quantitative claim has a `paper_value`
(a number, or a mapping part -> number with `metric` a mapping with the same parts), the paper's `rounding` (half
a unit of its last printed digit, or the stated read-off precision) and a `tolerance`: `{interval: true}` (the
verdict uses our bootstrap interval, `checks.py`) or, only for a number without a sampling interval, `{abs: x}` /
`{rel: x}`. It passes when every part reaches a verdict level. Any claim may carry `check`: one named rule or a
list of them, all of which must hold. Rules are a small fixed set (`checks.CHECKS`), no eval. Planted checks
compare with the planted truth (exact: rounding 0 unless stated) and always state an abs/rel tolerance (the
planted model reproduces its design only approximately); `interval: true` adds our interval as a level.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from erasure.io import read_yaml
from erasure.paths import CLAIMS_FILE
from erasure.verification.checks import KEY_ARGS
from erasure.verification.claim_schema import check_registry
from erasure.verification.gaps import validate_gaps
from erasure.verification.metrics import split_key


def load_claims(path: str | Path = CLAIMS_FILE) -> dict:
    """Read and validate the registry: {"paper": {...}, "claims": [...], "planted_checks": [...]}, the mapping as
    read (its readers tell a stated key, e.g. a planted check's `rounding`, from an absent one)."""
    path = Path(path)
    registry = read_yaml(path)
    validate_registry(registry, str(path))
    return registry


def validate_registry(registry: Any, where: str = "claims.yaml") -> None:
    """Every entry against the schema (erasure.verification.claim_schema), then the figure gaps' references."""
    check_registry(registry, where)
    validate_gaps(registry, where)


def as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def check_keys(check: dict) -> list[str]:
    """The metric keys a check reads (placeholders unexpanded)."""
    (_, args), = check.items()
    return [args[name] for name in KEY_ARGS if name in args]


def entry_files(entry: dict) -> list[str]:
    """Metric files an entry reads (from `metric` and every check)."""
    keys: list[str] = []
    metric = entry.get("metric")
    if isinstance(metric, dict):
        keys += list(metric.values())
    elif metric is not None:
        keys.append(metric)
    for check in as_list(entry.get("check")):
        keys += check_keys(check)
    return list(dict.fromkeys(split_key(k)[0] for k in keys))


def metric_keys_of(registry: dict, include_planted: bool = True) -> list[str]:
    """Every `file:key` a claim (or planted check) reads, placeholders unexpanded."""
    keys: list[str] = []
    entries = list(registry["claims"]) + (list(registry.get("planted_checks") or []) if include_planted else [])
    for entry in entries:
        metric = entry.get("metric")
        keys += list(metric.values()) if isinstance(metric, dict) else ([metric] if metric else [])
        for check in as_list(entry.get("check")):
            keys += check_keys(check)
    return list(dict.fromkeys(keys))
