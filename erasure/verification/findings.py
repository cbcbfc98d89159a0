"""What this run found in its own model, whatever the model: the discovered writer and erasers, how much is
erased and by what, the V-composition share, Fig 4's line for the figures' writer, and a verdict, "gelu-4l-like
erasure: yes / partly / no", by the rule of the cross-model comparison (erasure.analysis.comparison.VERDICT_RULE).

The paper's claims are about gelu-4l; on any other model they are NOT RUN. These findings are what such a run
says instead, built from metrics/discovery.json and metrics/fig4_dla.json, and shown by the verification report
and the paper with the same text (`findings_md`).
"""
from __future__ import annotations

from typing import Any

from erasure.analysis.comparison import VERDICT_RULE, criteria, erasure_verdict, writer_row
from erasure.formatting import as_number, fixed, interval, level_text, percent
from erasure.mechanism.names import interval_keys
from erasure.params.sections import Compare
from erasure.paths import METRICS
from erasure.verification.metrics import Metrics


def run_findings(metrics: Metrics, run_model: str, cp: Compare) -> dict[str, Any]:
    """The findings record (stored in paper/verification.json as `findings`)."""
    record = metrics.file(str(METRICS["discovery"]))
    if not isinstance(record, dict) or record.get("model") != run_model:
        found = "absent" if not isinstance(record, dict) else f"from {record.get('model')!r}"
        return {"model": run_model, "available": False,
                "reason": f"{METRICS['discovery']} is {found}: the activations stage has not run for {run_model}"}
    writers = record.get("writers") or []
    top = writer_row(writers[0]) if writers else None
    checks = criteria(top, cp)
    selection = record.get("selection_frequency") or {}
    out: dict[str, Any] = {
        "model": run_model,
        "available": True,
        "n_prompts": record.get("n_prompts"),
        "seq_len": record.get("seq_len"),
        "n_writers": record.get("n_writers"),
        "n_writers_relevant": record.get("n_writers_relevant"),
        "n_draws": (record.get("bootstrap") or {}).get("n_draws"),
        "level": (record.get("bootstrap") or {}).get("level"),
        "top": top,
        "alternatives": [t for t in selection.get("writers") or [] if top is None or t.get("name") != top["name"]],
        "criteria": checks,
        "verdict": erasure_verdict(checks, top is not None),
        "rule": VERDICT_RULE,
        "fig4": _fig4(metrics, run_model, top),
    }
    return out


def _fig4(metrics: Metrics, run_model: str, top: dict | None) -> dict | None:
    """Fig 4's line (slope, r, with intervals) and whose DLA it is: the figures' writer may be params' one."""
    fig4 = metrics.file(str(METRICS["fig4_dla"]))
    if not isinstance(fig4, dict) or fig4.get("model") != run_model:
        return None
    line = fig4.get("paper") or {}
    out = {"writer": fig4.get("writer"), "erasers": fig4.get("erasers"),
           "same_writer": top is not None and fig4.get("writer") == top["name"]}
    if fig4.get("applicable") is False:
        return {**out, "applicable": False, "reason": fig4.get("reason")}
    keys = ("slope", "slope_low", "slope_high", "r", "r_low", "r_high")
    return {**out, "applicable": True, **{k: line.get(k) for k in keys}}


def _num(x: Any, digits: int = 2) -> str:
    v = as_number(x)
    return "n/a" if v is None else fixed(v, digits)


def _ci(ends: tuple[Any, Any], digits: int = 2) -> str:
    low, high = (as_number(e) for e in ends)
    return "no interval" if low is None or high is None else interval(low, high, digits)


def _ends(row: dict, key: str) -> tuple[Any, Any]:
    """The interval stored beside `key` in a row (`<key>_low`, `<key>_high`)."""
    return tuple(row.get(k) for k in interval_keys(key))


def _pct(x: Any) -> str:
    v = as_number(x)
    return "n/a" if v is None else percent(v)


def findings_md(f: dict[str, Any]) -> str:
    """The findings as Markdown paragraphs, every sentence that judges chosen by the verdict rule's numbers."""
    if not f.get("available"):
        return f"> **No findings:** {f.get('reason')}."
    level = "confidence" if as_number(f.get("level")) is None else level_text(f["level"])
    top = f["top"]
    lines = [f"**gelu-4l-like erasure: {f['verdict']}.** Rule: {f['rule']}."]
    if top is None:
        lines.append(f"No writer of {f['model']} passed discovery's relevance filters ({f.get('n_writers')} "
                     "candidates scanned), so there is nothing whose erasure could be measured.")
        return "\n\n".join(lines)
    alt = ", ".join(f"{a['name']} {_pct(a.get('frequency'))}" for a in f["alternatives"])
    stable = "a stable pick" if f["criteria"]["top_frequency"]["pass"] else "not a stable pick"
    lines.append(
        f"Discovery, not told the answer, names **{top['name']}** as the top writer of {f['model']}: it is the top "
        f"writer in {_pct(top['top_frequency'])} of {f.get('n_draws')} prompt resamples ({stable}"
        + (f"; the others: {alt}" if alt else "") + f"). Of {f.get('n_writers')} candidate outputs, "
        f"{f.get('n_writers_relevant')} passed the relevance filters.")
    erased = f["criteria"]["erasure_lower"]["pass"]
    lines.append(
        f"By `{top['min_checkpoint']}` the residual stream has lost **{_num(top['erasure'], 3)}** of its output "
        f"({level} interval {_ci(_ends(top, 'erasure'), 3)}; "
        + ("erased" if erased else "not clearly erased")
        + f" by the rule's lower bound of {_num(f['criteria']['erasure_lower']['threshold'])}). What later "
        f"components took away by then: heads {_num(top['erased_by_heads'])} ({_ci(_ends(top, 'erased_by_heads'))}), "
        f"MLPs {_num(top['erased_by_mlps'])} ({_ci(_ends(top, 'erased_by_mlps'))}); "
        + ("mostly heads" if f["criteria"]["head_share"]["pass"] else "not mostly heads")
        + f" (heads' share {_num(top['head_share'])}).")
    if top["erasers"]:
        vcomp = f["criteria"]["vcomp_share_lower"]["pass"]
        lines.append(
            f"Its erasers, the components of layer {top['erasing_layer']} below the eraser threshold: "
            f"{', '.join(top['erasers'])}. Removing {top['name']} from their value input changes their erasure by "
            f"a V-composition share of **{_num(top['vcomp_share'])}** ({_ci(_ends(top, 'vcomp_share'))}): the "
            "erasure " + ("runs through V-composition" if vcomp else "does not clearly run through V-composition")
            + ".")
    else:
        lines.append(f"No component of its erasing layer (layer {top['erasing_layer']}) passes the eraser "
                     "threshold, so there is no V-composition share to measure.")
    fig4 = f.get("fig4")
    if fig4 is None:
        lines.append("Fig 4 has not run for this model.")
    elif not fig4.get("applicable", True):
        lines.append(f"Fig 4 (writer {fig4['writer']}) does not apply: {fig4.get('reason')}.")
    else:
        whose = ("the same writer" if fig4["same_writer"]
                 else f"the figures' writer {fig4['writer']} (from params.yaml), not the discovered one")
        lines.append(
            f"Fig 4, for {whose}: DLA of the writer against its erasers' V-composition part has slope "
            f"**{_num(fig4['slope'], 3)}** ({_num(fig4['slope_low'], 3)} to {_num(fig4['slope_high'], 3)}) and "
            f"r = **{_num(fig4['r'], 3)}** ({_num(fig4['r_low'], 3)} to {_num(fig4['r_high'], 3)}).")
    return "\n\n".join(lines)
