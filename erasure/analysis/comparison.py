"""The cross-model comparison: the sweep's discovery results side by side (metrics/comparison.json).

Input: `sweep/<model>.json`, one per model, each an experiment's `metrics/discovery.json` as
`python -m scripts.collect_sweep` copied it from `dvc exp show --json` (with the experiment's name and commit).
Per model: the top writers (up to `compare.top_writers`), how much of each is erased within its window (with its
prompt-bootstrap interval), how often it tops a prompt resample, who erases it (heads vs MLPs), its erasers and
their V-composition share (with interval). The verdict "gelu-4l-like erasure" holds when the model's top writer
meets every criterion of `compare.gelu4l_like`; the control model's row is checked against the planted truth.
"""
from __future__ import annotations

import json
import math
from typing import Any

from erasure.errors import DataError
from erasure.mechanism.names import INTERVAL_SUFFIXES
from erasure.params.sections import Compare

POSITIONS = {"standard": "learned absolute", "rotary": "rotary", "shortformer": "learned absolute (shortformer)",
             "alibi": "ALiBi"}  # TransformerLens positional_embedding_type -> what the paper text calls it


def _with_interval(name: str, source: dict, key: str) -> dict:
    """{name: source[key], name_low: source[key_low], name_high: source[key_high]} (null where absent)."""
    return {name + s: source.get(key + s) for s in ("", *INTERVAL_SUFFIXES)}


def writer_row(w: dict) -> dict:
    """One top writer of a discovery record, in the comparison's terms (intervals as `<key>_low`, `<key>_high`)."""
    eraser_sum = w.get("eraser_sum") or {}
    split = w.get("erased_by") or {}
    heads = (split.get("heads") or {}).get("median")
    mlps = (split.get("mlps") or {}).get("median")
    erasers = [e["name"] for e in w.get("erasers") or []]
    return {
        "name": w["name"],
        **_with_interval("erasure", w, "erasure"),
        "top_frequency": w.get("top_frequency"),
        "erasing_layer": w.get("erasing_layer"),
        "min_checkpoint": w.get("min_checkpoint"),
        **_with_interval("erased_by_heads", split.get("heads") or {}, "median"),
        **_with_interval("erased_by_mlps", split.get("mlps") or {}, "median"),
        "head_share": head_share(heads, mlps),
        "erasers": erasers,
        "n_eraser_heads": sum(1 for e in erasers if not e.startswith("MLP")),
        "n_eraser_mlps": sum(1 for e in erasers if e.startswith("MLP")),
        "eraser_sum_clean": eraser_sum.get("clean_median"),
        **_with_interval("vcomp_share", eraser_sum, "vcomp_share"),
        "erasure_centred": (w.get("subset") or {}).get("erasure_centred"),
    }


def head_share(heads: float | None, mlps: float | None) -> float | None:
    """Heads' part of what heads and MLPs take away (parts that add to the writer count as nothing)."""
    if heads is None or mlps is None:
        return None
    h, m = max(heads, 0.0), max(mlps, 0.0)
    return None if h + m == 0 else h / (h + m)


def criteria(top: dict | None, cp: Compare) -> dict[str, dict]:
    """Each criterion of compare.gelu4l_like for the top writer: its value, the threshold, pass."""
    g = cp.gelu4l_like
    values = {
        "top_frequency": (None if top is None else top["top_frequency"], g.min_top_frequency),
        "erasure_lower": (None if top is None else top["erasure_low"], g.min_erasure),
        "head_share": (None if top is None else top["head_share"], g.min_head_share),
        "vcomp_share_lower": (None if top is None else top["vcomp_share_low"], g.min_vcomp_share),
    }
    return {k: {"value": v, "threshold": t, "pass": v is not None and math.isfinite(v) and v >= t}
            for k, (v, t) in values.items()}


VERDICT_RULE = ("yes: the top writer meets every criterion of compare.gelu4l_like; partly: its output is erased "
                "(lower bound of the erasure >= min_erasure) mostly by heads (head share >= min_head_share) but "
                "it is not a stable pick or the erasure does not run through V-composition; no: otherwise (not "
                "erased, erased mostly by MLPs, or no writer passes the relevance filters)")


def erasure_verdict(checks: dict[str, dict], has_writer: bool) -> str:
    """"gelu-4l-like erasure": yes / partly / no, by VERDICT_RULE (docs/methods.md, "Findings on the run's own
    model")."""
    if has_writer and all(c["pass"] for c in checks.values()):
        return "yes"
    if has_writer and checks["erasure_lower"]["pass"] and checks["head_share"]["pass"]:
        return "partly"
    return "no"


def model_entry(name: str, collected: dict, cp: Compare) -> dict:
    """One model's row group: where it came from, its architecture, its top writers and the verdict."""
    record = collected["discovery"]
    if record.get("model") != name:
        raise DataError(f"sweep/{name}.json holds discovery results for {record.get('model')!r}, not {name!r}: "
                        "rerun `python -m scripts.collect_sweep`")
    arch = record.get("architecture") or {}
    writers = [writer_row(w) for w in record.get("writers", [])[: cp.top_writers]]
    checks = criteria(writers[0] if writers else None, cp)
    tops = record["selection_frequency"]["writers"]
    verdict = erasure_verdict(checks, bool(writers))
    return {
        "model": name,
        "ran": True,
        "experiment": collected.get("experiment"),
        "rev": collected.get("rev"),
        "n_prompts": record.get("n_prompts"),
        "seq_len": record.get("seq_len"),
        "architecture": arch,
        "positions": POSITIONS.get(arch.get("positional_embedding_type"), arch.get("positional_embedding_type")),
        "selected": record.get("selected"),
        "bootstrap": record.get("bootstrap"),
        "top_writer_alternatives": tops if len(tops) > 1 else [],  # the resamples' top writers, if not unanimous
        "n_writers_relevant": record.get("n_writers_relevant"),
        "n_writers": record.get("n_writers"),
        "writers": writers,
        "criteria": checks,
        "verdict": verdict,
        "gelu4l_like": verdict == "yes",
        # the top writer's erasure vanishes once token-constant means are removed: a shared direction is cancelled
        "shared_direction": bool(writers) and writers[0]["erasure_centred"] is not None
        and writers[0]["erasure_centred"] < cp.gelu4l_like.min_erasure,
    }


def control_checks(entry: dict, truth: Any) -> dict:
    """The control's row against the planted truth: writer, eraser set, erasure within tolerance, verdict."""
    top = entry["writers"][0] if entry["writers"] else None
    tol = truth.tolerances["total_erasure"]
    found = None if top is None else top["erasure"]
    checks = {
        "writer": {"found": None if top is None else top["name"], "truth": truth.writer},
        "erasers": {"found": sorted((entry["selected"] or {}).get("erasers") or []), "truth": sorted(truth.erasers)},
        "erasure": {"found": found, "truth": truth.total_erasure, "tolerance": tol},
        "gelu4l_like": {"found": entry["gelu4l_like"], "truth": True},
    }
    checks["writer"]["pass"] = checks["writer"]["found"] == truth.writer
    checks["erasers"]["pass"] = checks["erasers"]["found"] == checks["erasers"]["truth"]
    checks["erasure"]["pass"] = found is not None and abs(found - truth.total_erasure) <= tol
    checks["gelu4l_like"]["pass"] = entry["gelu4l_like"] is True
    return {"model": entry["model"], "checks": checks, "recovered": all(c["pass"] for c in checks.values())}


def compare(collected: dict[str, dict], cp: Compare, truth: Any) -> dict:
    """metrics/comparison.json from the collected experiments (model -> collected record)."""
    models = []
    for name in cp.models:
        if name in collected:
            models.append(model_entry(name, collected[name], cp))
        else:
            models.append({"model": name, "ran": False, "writers": [], "gelu4l_like": None})
    ran = [m for m in models if m["ran"]]
    control = next((m for m in ran if m["model"] == cp.control), None)
    others = [m for m in ran if m["model"] != cp.control]
    return {
        "models": models,
        "n_run": len(ran),
        "not_run": [m["model"] for m in models if not m["ran"]],
        "control": control_checks(control, truth) if control is not None else None,
        "gelu4l_like": [m["model"] for m in others if m["gelu4l_like"]],
        "not_gelu4l_like": [m["model"] for m in others if not m["gelu4l_like"]],
        "criteria": cp.gelu4l_like.model_dump(),
        "ci_level": interval_level(ran),  # percent: the prompt-bootstrap intervals' coverage
        "top_writers": cp.top_writers,
        "audit": audit_comparison(collected, cp),
    }


def interval_level(ran: list[dict]) -> float | int | None:
    """The level of the sweep's intervals in percent (its records' `bootstrap.level`), which must be one level: the
    table shows the intervals side by side. None when no model ran."""
    levels = {m["bootstrap"]["level"] for m in ran}
    if len(levels) > 1:
        raise DataError(f"sweep/*.json: the models' intervals have different levels ({sorted(levels)}): rerun "
                        "their experiments with one stats.level and collect them again")
    if not levels:
        return None
    percent = round(100 * levels.pop(), 6)
    return int(percent) if percent.is_integer() else percent


AUDIT_TOP = 5  # most repaired components per model in the comparison


def audit_row(name: str, audit: dict) -> dict:
    """One model's DLA audit (sweep/<model>.json `audit`, its metrics/dla_audit.json) in the comparison's terms:
    the verdict counts, the most repaired components with intervals, and the mean repair share of the shallow and
    deep halves of the model (relative depth below / from 0.5; null shares left out)."""
    if audit.get("model") != name:
        raise DataError(f"sweep/{name}.json holds an audit of {audit.get('model')!r}, not {name!r}: rerun "
                        "`python -m scripts.collect_sweep --audit`")
    comps = audit["components"]
    shares = [(r["relative_depth"], r["repair_share"]) for r in comps.values() if r["repair_share"] is not None]

    def mean(rows):
        return sum(s for _, s in rows) / len(rows) if rows else None
    return {
        "model": name,
        "experiment": audit.get("experiment"),
        "n_prompts": audit.get("n_prompts"),
        "ablation": audit.get("ablation"),
        "direction": audit.get("direction"),
        **{k: audit["verdicts"][k] for k in ("n_components", "overstated", "understated", "consistent", "null")},
        "top": [{"component": c, "repair_share": comps[c]["repair_share"], "low": comps[c]["repair_share_low"],
                 "high": comps[c]["repair_share_high"], "relative_depth": comps[c]["relative_depth"]}
                for c in audit["ranking"][:AUDIT_TOP]],
        "mean_shallow": (shallow := mean([r for r in shares if r[0] < 0.5])),
        "mean_deep": (deep := mean([r for r in shares if r[0] >= 0.5])),
        "grows_with_depth": None if shallow is None or deep is None else deep > shallow,
    }


def audit_comparison(collected: dict[str, dict], cp: Compare) -> dict | None:
    """The sweep's DLA audits side by side (None when no record carries one)."""
    rows = [audit_row(name, collected[name]["audit"]) for name in cp.models
            if collected.get(name, {}).get("audit")]
    if not rows:
        return None
    ablations = sorted({r["ablation"] for r in rows})
    return {"models_run": [r["model"] for r in rows],
            "not_run": [m for m in cp.models if m not in {r["model"] for r in rows}],
            "ablation": ablations[0] if len(ablations) == 1 else ", ".join(ablations), "rows": rows}


def collect_experiments(show: list[dict]) -> tuple[dict[str, dict], list[str]]:
    """From `dvc exp show --json`: model -> the newest successful experiment that ran it (its name, commit,
    baseline commit, timestamp), and notes on experiments left out. `dvc exp show` drops lists from metrics, so
    the discovery results themselves are read from the experiment's commit (`discovery_at`)."""
    newest: dict[str, dict] = {}
    notes = []
    for baseline in show:
        for exp_range in baseline.get("experiments") or []:
            state = (exp_range.get("executor") or {}).get("state", "success")  # pulled experiments: no executor
            for exp in exp_range.get("revs") or []:
                name = exp.get("name") or exp_range.get("name") or exp.get("rev")
                if state != "success":  # queued or running: its metrics are the baseline's, or half-written
                    notes.append(f"{name}: {state}, not collected")
                    continue
                data = exp.get("data")
                if exp.get("error") or not data:
                    notes.append(f"{name}: no results ({(exp.get('error') or {}).get('msg', 'no data')})")
                    continue
                model = (((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}).get("model")
                record = {"model": model, "experiment": name, "rev": exp.get("rev"),
                          "baseline": baseline.get("rev"), "timestamp": data.get("timestamp")}
                if model not in newest or (record["timestamp"] or "") > (newest[model]["timestamp"] or ""):
                    newest[model] = record
    return newest, notes


def audit_at(record: dict, show_file) -> dict | None:
    """The experiment's metrics/dla_audit.json, with the experiment's name and commit; None when it has none."""
    try:
        audit = json.loads(show_file(record["rev"], "metrics/dla_audit.json"))
    except DataError:
        return None
    if audit.get("model") != record["model"]:
        raise DataError(f"experiment {record['experiment']} ran {record['model']} but its metrics/dla_audit.json "
                        f"is from {audit.get('model')!r}: did its dla_audit stage run?")
    return {"experiment": record["experiment"], "rev": record["rev"], **audit}


def discovery_at(record: dict, show_file) -> dict:
    """The experiment's metrics/discovery.json (read with `show_file(rev, path)`), checked to be its model's."""
    discovery = json.loads(show_file(record["rev"], "metrics/discovery.json"))
    if discovery.get("model") != record["model"]:
        raise DataError(f"experiment {record['experiment']} ran {record['model']} but its metrics/discovery.json "
                        f"is from {discovery.get('model')!r}: did its discover stage run?")
    return discovery
