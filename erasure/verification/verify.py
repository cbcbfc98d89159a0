"""Verification: every claim of the registry (and, on planted-4l, every planted-truth check) against the metrics.

Statuses: PASS, FAIL, NOT RUN. A claim is checked only when the run's model is the claim's model; otherwise it is
NOT RUN with the reason ("metrics are from planted-4l; this claim is about gelu-4l"), never PASS. A claim that
applies but cannot be evaluated (metric file or key missing, null value, metrics from another model) is FAIL with
the reason: a claim the run should reproduce and does not is not reproduced.

A PASS also says how close (`level`, checks.LEVELS): `equal` at the paper's printed precision, inside our
`interval` (widened by the paper's rounding), within a stated `tolerance` (numbers without a sampling interval
only), or `rule` (a qualitative claim's rules hold). A claim with several parts takes its weakest part's level.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from erasure.params.sections import Compare
from erasure.paths import DVC_LOCK, DVC_YAML, INPUTS, METRIC_FILES
from erasure.verification.checks import LEVELS, Context, run_check
from erasure.verification.claim_schema import is_number, is_quantitative
from erasure.verification.findings import run_findings
from erasure.verification.gaps import figure_gaps
from erasure.verification.metrics import PLACEHOLDER, Metrics, MissingMetric, truth_dict
from erasure.verification.provenance import provenance, read_yaml
from erasure.verification.registry import as_list, entry_files

PASS, FAIL, NOT_RUN = "PASS", "FAIL", "NOT RUN"


@dataclass
class Result:
    id: str
    status: str
    text: str
    paper_value: Any = None
    reproduced: Any = None
    diff: Any = None
    tolerance: str = ""  # what decides: the paper's rounding, our interval and/or a tolerance
    level: str | None = None  # PASS level: equal | interval | tolerance | rule (None: FAIL or NOT RUN)
    interval: Any = None  # our (low, high), or part -> (low, high)
    reason: str = ""
    details: list = field(default_factory=list)
    metrics: list = field(default_factory=list)  # metric keys actually read (expanded)
    files: list = field(default_factory=list)  # [{path, stage, lock_md5, md5, model}]

    def to_json(self) -> dict:
        return asdict(self)


def _tolerance_text(entry: dict, value_field: str, truth: Any = None) -> str:
    """What decides a quantitative entry: the paper's rounding, our interval, a tolerance (or `rule`)."""
    if not is_quantitative(entry.get(value_field)):
        return "rule"
    tol = entry["tolerance"]
    parts = [f"printed ±{entry['rounding']:g}"] if entry.get("rounding") else []
    if tol.get("interval"):
        parts.append("interval")
    name = tol.get("truth")
    tols = (truth_dict(truth).get("tolerances") or {}) if truth is not None else {}
    if name and name in tols:
        parts.append(f"±{float(tols[name]):g} (planted truth `{name}`)")
    elif "abs" in tol:
        parts.append(f"±{tol['abs']:g}" + (f" (planted truth has no `{name}`)" if name and truth is not None else ""))
    elif "rel" in tol:
        parts.append(f"±{100 * tol['rel']:g}%")
    return "; ".join(parts)


def _entry_checks(entry: dict, value_field: str) -> tuple[list[str | None], list[dict]]:
    """The entry's value spec turned into `within` checks (one per part; None: a single number), followed by its own
    checks. Returns (the parts of the value checks, all checks)."""
    value = entry.get(value_field)
    parts: list[str | None] = []
    checks: list[dict] = []
    if is_quantitative(value):
        spec = {**entry["tolerance"], "rounding": entry.get("rounding", 0.0)}
        if isinstance(value, dict) and "truth" not in value:
            for part, ref in value.items():
                parts.append(part)
                checks.append({"within": {"metric": entry["metric"][part], "value": ref, **spec}})
        else:
            parts.append(None)
            checks.append({"within": {"metric": entry["metric"], "value": value, **spec}})
    return parts, checks + as_list(entry.get("check"))


def evaluate_entry(entry: dict, metrics: Metrics, value_field: str = "paper_value", truth: Any = None,
                   env: dict | None = None, entry_id: str | None = None, text: str | None = None) -> Result:
    """Evaluate one claim / planted check whose applicability was already decided."""
    ctx = Context(metrics=metrics, truth=truth, env=dict(env or {}))
    value = entry.get(value_field)
    result = Result(id=entry_id or entry["id"], status=PASS, text=text or entry.get("claim") or entry.get("what", ""),
                    tolerance=_tolerance_text(entry, value_field, truth))
    try:
        result.paper_value = ctx.value(value) if isinstance(value, dict) and "truth" in value else value
    except MissingMetric as err:
        return _failed(result, str(err), ctx)
    reproduced: dict[str, Any] = {}
    failures: list[str] = []
    outcomes: list[Any] = []
    parts, checks = _entry_checks(entry, value_field)
    levels: list[str | None] = []
    intervals: dict[str | None, list[float]] = {}
    for i, check in enumerate(checks):
        start = len(ctx.used)
        try:
            outcome = run_check(check, ctx)
        except MissingMetric as err:
            failures.append(f"cannot evaluate: {err}")
            result.details.append({"check": next(iter(check)), "ok": False, "detail": f"cannot evaluate: {err}",
                                   "keys": ctx.used[start:]})
            outcomes.append(None)
            continue
        result.details.append({"check": next(iter(check)), "ok": outcome.ok, "detail": outcome.detail,
                               "keys": ctx.used[start:]})
        outcomes.append(outcome.value if is_number(outcome.value) or isinstance(outcome.value, (str, list)) else None)
        if i < len(parts):
            levels.append(outcome.level)
            if outcome.interval is not None:
                intervals[parts[i]] = list(outcome.interval)
        if not outcome.ok:
            failures.append(outcome.detail)
    if intervals:
        result.interval = intervals[None] if None in intervals else intervals
    if not failures:
        result.level = max(levels, key=LEVELS.index) if levels else "rule"
    # reproduced value(s) and difference for display
    if is_quantitative(value) and isinstance(value, dict) and "truth" not in value:
        for part, key in entry["metric"].items():
            try:
                reproduced[part] = ctx.peek(key)
            except MissingMetric:
                reproduced[part] = None
        result.reproduced = reproduced
        result.diff = {p: reproduced[p] - value[p] for p in value if is_number(reproduced.get(p))}
    elif entry.get("metric") is not None and not isinstance(entry["metric"], dict):
        try:
            result.reproduced = ctx.peek(entry["metric"])
        except MissingMetric:
            result.reproduced = None
        if is_number(result.reproduced) and is_number(result.paper_value):
            result.diff = result.reproduced - result.paper_value
    elif any(o is not None for o in outcomes):  # a rule-only claim: what each rule measured, by name
        labels = outcome_labels([d["keys"] for d in result.details], [d["check"] for d in result.details])
        result.reproduced = {label: o for label, o in zip(labels, outcomes) if o is not None}
    result.metrics = list(dict.fromkeys(ctx.used))
    if failures:
        result.status = FAIL
        result.reason = "; ".join(failures)
    return result


QUANTITY = {"rel_change_below": "relative change", "rel_change_above": "relative change",
            "abs_diff_below": "difference", "abs_below": "value"}


def outcome_labels(keys: list[list[str]], kinds: list[str]) -> list[str]:
    """A label per rule of a claim: the part of its metric key that tells it from the claim's other rules (the
    shared prefix and suffix dropped), plus what it measured: `p1 relative change`, `comparison_head`."""
    firsts = [k[0].split(":", 1)[-1].split(".") if k else [] for k in keys]
    pre = 0
    while all(len(f) > pre for f in firsts) and len({tuple(f[:pre + 1]) for f in firsts}) == 1:
        pre += 1
    suf = 0
    while all(len(f) > pre + suf for f in firsts) and len({tuple(f[len(f) - suf - 1:]) for f in firsts}) == 1:
        suf += 1
    labels = []
    for i, (f, kind) in enumerate(zip(firsts, kinds)):
        core = ".".join(f[pre:len(f) - suf]) if len(firsts) > 1 else ".".join(f[-2:])
        label = " ".join(x for x in (core or kind, QUANTITY.get(kind, "")) if x)
        labels.append(label if label not in labels else f"{label} ({i + 1})")
    return labels


def not_run(result: Result, reason: str) -> Result:
    """A claim about another model: its value as this run measured it (and our interval), but no verdict, so
    nothing in the report reads as if it passed or failed."""
    result.status, result.reason, result.level, result.diff, result.details = NOT_RUN, reason, None, None, []
    return result


def _failed(result: Result, reason: str, ctx: Context) -> Result:
    result.status, result.reason = FAIL, reason
    result.metrics = list(dict.fromkeys(ctx.used))
    return result


def verify_claims(registry: dict, metrics: Metrics, run_model: str) -> list[Result]:
    """Every claim of the registry: PASS/FAIL when it is about `run_model`, NOT RUN otherwise."""
    results = []
    for claim in registry["claims"]:
        files = entry_files(claim)
        models = {f: metrics.model_of(f) for f in files}
        if claim["model"] != run_model:
            reason = f"metrics are from {run_model}; this claim is about {claim['model']}"
            stale = sorted({m for m in models.values() if m and m != run_model})
            if stale:
                reason += f" (and some metrics files are stale, from {', '.join(stale)})"
            results.append(not_run(evaluate_entry(claim, metrics), reason))
            continue
        stale = {f: m for f, m in models.items() if m is not None and m != run_model}
        if stale:
            result = Result(id=claim["id"], status=FAIL, text=claim["claim"], paper_value=claim["paper_value"],
                            reason="stale metrics: " + ", ".join(f"{f} is from {m}" for f, m in stale.items())
                            + f", but the run's model is {run_model} (run dvc repro)")
        else:
            result = evaluate_entry(claim, metrics)
        results.append(result)
    return results


def expand_planted(registry: dict, truth: Any) -> list[tuple[dict, dict, str, str]]:
    """(entry, env, id, text) for every planted check, loops over truth fields unrolled."""
    out = []
    for entry in registry.get("planted_checks") or []:
        loop = entry.get("for_each")
        if loop is None:
            out.append((entry, {}, entry["id"], entry["what"]))
            continue
        items = truth_dict(truth).get(loop["truth"]) if truth is not None else None
        if items is None:
            out.append((entry, {}, entry["id"], entry["what"]))
            continue
        for item in (sorted(items) if isinstance(items, dict) else items):
            env = {loop["var"]: item}
            text = PLACEHOLDER.sub(lambda m, env=env: str(env.get(m.group(1), m.group(0))), entry["what"])
            out.append((entry, env, f"{entry['id']}[{item}]", text))
    return out


def verify_planted(registry: dict, metrics: Metrics, truth: Any, run_model: str) -> list[Result]:
    """The planted-truth checks: run only when the run's model is planted-4l."""
    results = []
    for entry, env, rid, text in expand_planted(registry, truth):
        if run_model != "planted-4l":
            results.append(Result(id=rid, status=NOT_RUN, text=text,
                                  reason=f"planted-truth checks apply to planted-4l; the run's model is {run_model}"))
            continue
        if truth is None:
            results.append(Result(id=rid, status=FAIL, text=text, reason="planted_truth() unavailable"))
            continue
        if entry.get("for_each") and not env:
            results.append(Result(id=rid, status=FAIL, text=text,
                                  reason=f"planted truth has no field {entry['for_each']['truth']!r} to loop over"))
            continue
        stale = {f: metrics.model_of(f) for f in entry_files(entry)}
        stale = {f: m for f, m in stale.items() if m is not None and m != run_model}
        if stale:
            results.append(Result(id=rid, status=FAIL, text=text, reason="stale metrics: " + ", ".join(
                f"{f} is from {m}" for f, m in stale.items())))
            continue
        results.append(evaluate_entry(entry, metrics, "expected", truth=truth, env=env, entry_id=rid, text=text))
    return results


def attach_provenance(results: list[Result], root: Path, dvc_yaml: dict | None, dvc_lock: dict | None,
                      metrics: Metrics, registry_entries: dict[str, dict]) -> None:
    for result in results:
        entry = registry_entries.get(result.id.split("[", 1)[0])
        files = entry_files(entry) if entry else []
        result.files = provenance(root, files, dvc_yaml, dvc_lock, metrics)


def load_truth() -> Any:
    """erasure.planted_truth.planted_truth(), behind a loader the tests can replace."""
    from erasure.planted_truth import planted_truth
    return planted_truth()


def run_verification(root: str | Path, params: dict, registry: dict,
                     truth_loader: Callable[[], Any] | None = load_truth, compare: Compare | None = None) -> dict:
    """Check every claim (and, for planted-4l, the planted truth) against the metrics under `root`; with the
    `compare` params, also say what the run found in its own model (`findings`)."""
    root = Path(root)
    metrics = Metrics(root)
    run_model = params.get("model")
    file_models = {f: metrics.model_of(f) for f in METRIC_FILES if metrics.file(f) is not None}
    truth, truth_error = None, None
    if run_model == "planted-4l" and registry.get("planted_checks") and truth_loader is not None:
        try:
            truth = truth_loader()
        except Exception as err:
            truth_error = f"{type(err).__name__}: {err}"
    claims = verify_claims(registry, metrics, run_model)
    planted = verify_planted(registry, metrics, truth, run_model) if run_model == "planted-4l" else []
    if truth_error:
        for result in planted:
            result.reason = f"planted_truth() failed: {truth_error}"
    dvc_yaml, dvc_lock = read_yaml(root / DVC_YAML), read_yaml(root / DVC_LOCK)
    entries = {e["id"]: e for e in registry["claims"]}
    entries.update({e["id"]: e for e in registry.get("planted_checks") or []})
    attach_provenance(claims + planted, root, dvc_yaml, dvc_lock, metrics, entries)
    paper_model = registry.get("paper", {}).get("model", "gelu-4l")
    if run_model == paper_model:
        note = f"The run's model is {run_model}, the paper's: every claim is checked against the paper's value."
    elif run_model == "planted-4l":
        note = (f"The run's model is planted-4l, a test instrument with erasure built in: no claim about "
                f"{paper_model} is checked (all NOT RUN); the planted-truth checks are.")
    else:
        note = (f"The run's model is {run_model}: nothing is checked against the paper, whose claims are about "
                f"{paper_model} (all NOT RUN).")
    stale = {f: m for f, m in file_models.items() if m != run_model}
    if stale:
        note += " Stale metrics from another model: " + ", ".join(f"{f} ({m})" for f, m in stale.items()) + "."
    inputs = metrics.file(str(INPUTS)) or {}
    report = {
        "model": run_model,
        "paper_model": paper_model,
        "inputs": inputs.get("hub", {}),
        "metric_models": file_models,
        "bootstrap": _interval_records(metrics, file_models),
        "note": note,
        "summary": {"claims": _count(claims), "planted": _count(planted)},
        "claims": [r.to_json() for r in claims],
        "planted": [r.to_json() for r in planted],
        "figure_gaps": figure_gaps(registry, metrics, run_model),
        "findings": run_findings(metrics, run_model, compare) if compare is not None else None,
    }
    report["ok"] = report["summary"]["claims"]["fail"] == 0 and report["summary"]["planted"]["fail"] == 0
    return _json_safe(report)


def _json_safe(obj: Any) -> Any:
    """NaN / inf (which a broken metric can hold) as strings, so the report stays valid JSON for DVC."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def _interval_records(metrics: Metrics, files) -> dict:
    """Each metrics file's interval settings (`bootstrap` with level, draws, seed, unit; discovery.json's too), left
    out where a file has none or an incomplete one."""
    records = {f: metrics.file(f).get("bootstrap") for f in files}
    return {f: r for f, r in records.items() if isinstance(r, dict) and {"level", "n_draws", "seed", "unit"} <= set(r)}


def _count(results: list[Result]) -> dict:
    passed = [r.level for r in results if r.status == PASS]
    return {"pass": len(passed), "fail": sum(r.status == FAIL for r in results),
            "not_run": sum(r.status == NOT_RUN for r in results), "total": len(results),
            "levels": {level: passed.count(level) for level in (*LEVELS, "rule") if level in passed}}


def failed_results(report: dict) -> list[dict]:
    """The claims (about the run's model) and planted checks that FAILed: what the gate,
    `python -m scripts.check_claims`, exits 1 on. NOT RUN claims are about another model and never fail it."""
    return [r for r in report["claims"] + report["planted"] if r["status"] == FAIL]


def summary_line(report: dict) -> str:
    """One line of counts: `verify (gelu-4l): claims 20 PASS / 4 FAIL / 0 NOT RUN; planted ...`."""
    s_c, s_p = report["summary"]["claims"], report["summary"]["planted"]
    return (f"verify ({report['model']}): claims {s_c['pass']} PASS / {s_c['fail']} FAIL / {s_c['not_run']} NOT RUN"
            + (f"; planted {s_p['pass']} PASS / {s_p['fail']} FAIL" if s_p["total"] else ""))
