"""The claims registry (`paper/claims.yaml`): loading and validation, and which metric keys each entry reads.

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

from erasure.errors import ClaimError
from erasure.io import read_yaml
from erasure.paths import CLAIMS_FILE
from erasure.verification.checks import CHECKS, KEY_ARGS
from erasure.verification.gaps import validate_gaps
from erasure.verification.metrics import split_key

SOURCES = ("paper", "blog", "artifact")  # artifact: a check this reproduction adds (not a claim of the authors)
REQUIRED_FIELDS = ("id", "claim", "section", "figure", "source", "model", "paper_value", "metric", "tolerance",
                   "tolerance_reason")
PLANTED_REQUIRED = ("id", "what", "tolerance_reason")
TEXT_FIELDS = ("id", "claim", "model", "source")  # compared and used as keys: a list or a number would misread


def load_claims(path: str | Path = CLAIMS_FILE) -> dict:
    """Read and validate the registry: {"paper": {...}, "claims": [...], "planted_checks": [...]}."""
    path = Path(path)
    registry = read_yaml(path)
    validate_registry(registry, str(path))
    return registry


def validate_registry(registry: Any, where: str = "claims.yaml") -> None:
    if not isinstance(registry, dict) or not isinstance(registry.get("claims"), list):
        raise ClaimError(f"{where} must be a mapping with a `claims` list")
    if not isinstance(registry.get("paper", {}), dict):
        raise ClaimError(f"{where}: paper = {registry['paper']!r} must be a mapping (model, title, ...)")
    if not isinstance(registry.get("planted_checks") or [], list):
        raise ClaimError(f"{where}: planted_checks must be a list")
    seen: set[str] = set()
    for claim in registry["claims"]:
        cid = claim.get("id") if isinstance(claim, dict) else None
        for name in REQUIRED_FIELDS:
            if not isinstance(claim, dict) or name not in claim:
                raise ClaimError(f"{where}: claim {cid!r} lacks the field `{name}`")
        for name in TEXT_FIELDS:
            if not isinstance(claim[name], str) or not claim[name]:
                raise ClaimError(f"{where}: claim {cid!r}: {name} = {claim[name]!r} must be a non-empty string")
        if cid in seen:
            raise ClaimError(f"{where}: claim id {cid!r} appears twice")
        seen.add(cid)
        if claim["source"] not in SOURCES:
            raise ClaimError(f"{where}: claim {cid}: source must be one of {SOURCES}")
        _validate_value_spec(claim, "paper_value", f"{where}: claim {cid}", planted=False)
    for check in registry.get("planted_checks") or []:
        cid = check.get("id") if isinstance(check, dict) else None
        for name in PLANTED_REQUIRED:
            if not isinstance(check, dict) or name not in check:
                raise ClaimError(f"{where}: planted check {cid!r} lacks the field `{name}`")
        if not isinstance(cid, str) or not cid:
            raise ClaimError(f"{where}: planted check id = {cid!r} must be a non-empty string")
        if cid in seen:
            raise ClaimError(f"{where}: id {cid!r} appears twice")
        seen.add(cid)
        _validate_value_spec(check, "expected", f"{where}: planted check {cid}", planted=True)
        loop = check.get("for_each")
        if loop is not None and not (isinstance(loop, dict) and set(loop) == {"var", "truth"}):
            raise ClaimError(f"{where}: planted check {cid}: for_each must be {{var: NAME, truth: FIELD}}")
    validate_gaps(registry, where)


def _validate_value_spec(entry: dict, value_field: str, where: str, planted: bool) -> None:
    value = entry.get(value_field)
    metric = entry.get("metric")
    if is_quantitative(value):
        if isinstance(value, dict) and "truth" not in value:
            if not isinstance(metric, dict) or set(metric) != set(value):
                raise ClaimError(f"{where}: a mapping {value_field} needs `metric` with the same parts")
            for key in metric.values():
                split_key(key, where)
        else:
            split_key(metric, where)
        _validate_tolerance(entry.get("tolerance"), where, "planted" if planted else "claim")
        if not planted or "rounding" in entry:
            _validate_rounding(entry.get("rounding", MISSING_FIELD), where)
    elif metric is not None:
        for key in (metric.values() if isinstance(metric, dict) else [metric]):
            split_key(key, where)
    checks = as_list(entry.get("check"))
    if not is_quantitative(value) and not checks:
        raise ClaimError(f"{where}: a claim without a numeric {value_field} needs a `check`")
    for check in checks:
        validate_check(check, where)


def is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def is_quantitative(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, dict):
        return "truth" in value or (bool(value) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()))
    return False


MISSING_FIELD = object()


def _validate_rounding(rounding: Any, where: str) -> None:
    if rounding is MISSING_FIELD:
        raise ClaimError(f"{where}: a numeric claim needs `rounding` (half a unit of the paper's last printed digit)")
    if isinstance(rounding, bool) or not isinstance(rounding, (int, float)) or not rounding >= 0:
        raise ClaimError(f"{where}: rounding must be a number >= 0, got {rounding!r}")


def _validate_tolerance(tol: Any, where: str, kind: str) -> None:
    """kind `claim`: {interval: true}, or {abs: x} / {rel: x} when the claim has no sampling interval. `planted`:
    {abs: x} / {rel: x} (optionally truth: NAME and interval: true). `check` (an explicit `within`): either or both."""
    if not isinstance(tol, dict) or set(tol) - {"abs", "rel", "truth", "interval"}:
        raise ClaimError(f"{where}: tolerance must be {{interval: true}} or {{abs: x}} / {{rel: x}}"
                         + ("" if kind == "claim" else " (optionally truth: NAME, interval: true)"))
    if "interval" in tol and tol["interval"] is not True:
        raise ClaimError(f"{where}: tolerance interval must be true (or absent), got {tol['interval']!r}")
    sizes = [k for k in ("abs", "rel") if k in tol]
    if len(sizes) > 1 or (kind == "planted" and not sizes) or not (sizes or "interval" in tol):
        raise ClaimError(f"{where}: tolerance must have exactly one of abs / rel"
                         + (", or interval: true" if kind != "planted" else ""))
    if kind == "claim" and sizes and "interval" in tol:
        raise ClaimError(f"{where}: tolerance must be interval or abs / rel, not both (a claim with a sampling "
                         "interval is judged by it alone)")
    if kind == "claim" and "truth" in tol:
        raise ClaimError(f"{where}: tolerance truth applies to planted checks only")
    for size in sizes:
        number = tol[size]
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not number > 0:
            raise ClaimError(f"{where}: tolerance {size} must be a positive number, got {number!r}")


def as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def validate_check(check: Any, where: str) -> None:
    if not isinstance(check, dict) or len(check) != 1:
        raise ClaimError(f"{where}: a check must be one `kind: {{args}}` mapping, got {check!r}")
    (kind, args), = check.items()
    if kind not in CHECKS:
        raise ClaimError(f"{where}: unknown check kind {kind!r}; allowed: {', '.join(CHECKS)}")
    _, required, optional = CHECKS[kind]
    if not isinstance(args, dict):
        raise ClaimError(f"{where}: check {kind} needs a mapping of arguments")
    missing = [r for r in required if r not in args]
    unknown = set(args) - set(required) - set(optional)
    if missing or unknown:
        raise ClaimError(f"{where}: check {kind}: missing {missing}, unknown {sorted(unknown)}")
    if kind in ("less_than", "greater_than") and ("value" in args) == ("than" in args):
        raise ClaimError(f"{where}: check {kind} needs exactly one of value / than")
    if kind == "within":
        _validate_tolerance({k: args[k] for k in ("abs", "rel", "truth", "interval") if k in args}, where, "check")
        if "rounding" in args:
            _validate_rounding(args["rounding"], where)
    for name in KEY_ARGS:
        if name in args:
            split_key(args[name], where)


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
