"""paper/verification.md: the verification report as Markdown tables, with every reason in full."""
from __future__ import annotations

from typing import Any

from erasure.markup import md_text
from erasure.mechanism.names import display_token
from erasure.verification.checks import LEVEL_TEXT
from erasure.verification.findings import findings_md
from erasure.verification.verify import FAIL, PASS, failed_results


def display(value: Any, digits: int = 4) -> str:
    """A compact, table-friendly rendering of a paper or reproduced value."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):  # labelled values; "; " between them when a value is itself a list
        sep = "; " if any(isinstance(v, list) for v in value.values()) else ", "
        return sep.join(f"{k}: {display(v, digits)}" for k, v in value.items())
    if isinstance(value, list):
        if value and all(isinstance(v, dict) and "token" in v for v in value):
            value = [v["token"] for v in value]
        return ", ".join(md_text(display_token(v)) if isinstance(v, str) else display(v, digits) for v in value)
    return md_text(value)  # text from data (a token, a name): inert in the Markdown table (erasure.markup)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_report_md(report: dict, digits: int = 6) -> str:
    """paper/verification.md: what FAILed and why, the run's own findings, one row per claim, then every planted
    check, then the reasons in full. Our values and intervals are shown with `digits` significant digits
    (outputs.significant_digits: every digit the metrics keep, so the report and `dvc metrics show` agree)."""
    s_c, s_p = report["summary"]["claims"], report["summary"]["planted"]
    lines = [
        "# Verification of the paper's claims",
        "",
        f"Model of this run: **{report['model']}** (the paper's: {report['paper_model']}). {report['note']}",
        "",
    ]
    if report.get("inputs"):
        lines += ["Inputs (Hugging Face Hub commits actually used):", ""]
        lines += [f"- {role}: `{src['repo']}` @ `{src['commit']}`"
                  + (f", `{src['weights_file']}` sha256 `{src['weights_sha256']}`" if "weights_sha256" in src else "")
                  for role, src in report["inputs"].items()]
        lines.append("")
    lines += [
        f"Claims: {s_c['pass']} PASS{_levels(s_c)}, {s_c['fail']} FAIL, {s_c['not_run']} NOT RUN of {s_c['total']}."
        + (f" Planted-truth checks: {s_p['pass']} PASS{_levels(s_p)}, {s_p['fail']} FAIL of {s_p['total']}."
           if s_p["total"] else ""),
        "",
        "Verdicts, strongest first: *equal at printed precision* (|ours - paper| <= the paper's rounding); *inside our "
        "interval* (the paper's value lies in our interval widened by that rounding); *within tolerance* (a stated "
        "tolerance, only for numbers without a sampling interval, and for the planted truth); *rule holds* "
        "(qualitative claims). Anything else is FAIL." + _bootstrap_text(report.get("bootstrap") or {}),
        "",
    ]
    failed = failed_results(report)
    if failed:
        lines += ["## What FAILed, and why", "", *failure_lines(failed, report.get("figure_gaps") or []), ""]
    if report.get("findings"):
        lines += [f"## What this run found in {report['model']}", "", findings_md(report["findings"]), ""]
    lines += ["## The paper's claims", ""]
    lines += _table(report["claims"], "paper", digits)
    if report["planted"]:
        lines += ["", "## Planted-truth checks (planted-4l)", ""]
        lines += _table(report["planted"], "planted", digits)
    if report.get("figure_gaps"):
        lines += ["", *_gaps(report["figure_gaps"])]
    notes = [r for r in report["claims"] + report["planted"] if r["status"] != PASS or r["details"]]
    if notes:
        lines += ["", "## Details", ""]
        for r in notes:
            lines.append(f"- **{r['id']}** ({r['status']}){': ' + md_text(r['reason']) if r['reason'] else ''}")
            for d in r["details"]:
                keys = ", ".join(f"`{k}`" for k in dict.fromkeys(d.get("keys") or []))
                lines.append(f"  - {'ok' if d['ok'] else 'NOT ok'} `{d['check']}`: {d['detail']}"
                             + (f" ({keys})" if keys else ""))
    return "\n".join(lines) + "\n"


def failure_lines(failed: list[dict], gaps: list[dict]) -> list[str]:
    """One bullet per FAIL with its reason; where the paper's own figure disagrees with its text (Fig 1's pair),
    what the authors' committed figure shows and whether sampling noise explains the paper-vs-figure gap."""
    by_claim = {g["claim"]: g for g in gaps}
    lines = []
    for r in failed:
        line = f"- **{r['id']}**: {md_text(r['reason'])}"  # reasons quote data (tokens): inert
        gap = by_claim.get(r["id"])
        if gap is not None:
            line += (f" The authors' committed figure shows {display(gap['figure_value'])} where the paper prints "
                     f"{display(gap['paper_value'])}; that gap is {gap['status']}"
                     + (f" ({md_text(gap['reason'])})" if gap.get("reason") else "") + ": see the last table.")
        lines.append(line)
    return lines


def _levels(summary: dict) -> str:
    levels = summary.get("levels") or {}
    return f" ({', '.join(f'{n} {LEVEL_TEXT[k]}' for k, n in levels.items())})" if levels else ""


def _bootstrap_text(records: dict) -> str:
    """One sentence on how the intervals were drawn, from the metrics files' `bootstrap` records."""
    if not records:
        return ""
    kinds = {}
    for file, rec in records.items():
        kinds.setdefault((rec.get("level"), rec.get("n_draws"), rec.get("seed"), rec.get("unit")), []).append(file)
    text = "; ".join(
        f"{display(100 * level)}% percentile bootstrap resampling each {unit} ({n} draws, seed {seed}): "
        + ", ".join(f"`{f}`" for f in files)
        for (level, n, seed, unit), files in kinds.items())
    return f" Intervals: {text}."


def interval_cell(interval: Any, digits: int = 4) -> str:
    if interval is None:
        return "—"
    if isinstance(interval, dict):
        return ", ".join(f"{k}: {interval_cell(v, digits)}" for k, v in interval.items())
    return f"[{display(interval[0], digits)}, {display(interval[1], digits)}]"


def verdict_cell(r: dict, fail_reason: bool = False) -> str:
    """PASS with its level, FAIL (with its reason, or a pointer to the Details), NOT RUN with its reason."""
    if r["status"] == PASS:
        return f"PASS: {LEVEL_TEXT[r.get('level')]}"
    if r["status"] == FAIL and not fail_reason:
        return "FAIL (see Details)"
    return r["status"] + (f" ({md_text(r['reason'])})" if r["reason"] else "")


def _table(results: list[dict], kind: str, digits: int) -> list[str]:
    head = "paper" if kind == "paper" else "expected"
    lines = [f"| id | claim | {head} | ours | interval | decided by | verdict | stage | md5 (dvc.lock) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        stages = ", ".join(dict.fromkeys(f["stage"] or "?" for f in r["files"])) or "—"
        md5s = ", ".join(_md5_cell(f) for f in r["files"]) or "—"
        lines.append("| " + " | ".join(_cell(c) for c in (
            r["id"], r["text"], display(r["paper_value"]), display(r["reproduced"], digits),
            interval_cell(r.get("interval"), digits),
            r["tolerance"] or "—", verdict_cell(r), stages, md5s)) + " |")
    return lines


def _gaps(gaps: list[dict]) -> list[str]:
    """The paper vs the authors' committed figure: is the gap within sampling noise for their prompt counts?"""
    lines = ["## The paper vs the authors' committed figure", "",
             "If the paper's number and the figure's were measured on independent prompt samples of their sizes, "
             "would sampling alone explain their gap? Noise bound = z x sqrt(se(n_paper)^2 + se(n_figure)^2) + both "
             "roundings, with se(n) = our standard error (from our interval) x sqrt(n_ours / n) "
             "(erasure/verification/gaps.py).", "",
             "| claim | paper | authors' figure | gap | prompts (paper, figure; ours) | our interval | noise bound | "
             "verdict |", "|---|---|---|---|---|---|---|---|"]
    for g in gaps:
        verdict = g["status"] + (f" ({md_text(g['reason'])})" if g.get("reason") else "")
        lines.append("| " + " | ".join(_cell(c) for c in (
            g["claim"], display(g["paper_value"]), display(g["figure_value"]), display(g["gap"], 2),
            f"{g['n_paper']}, {g['n_figure']}; {display(g.get('n_ours'))}", interval_cell(g.get("interval")),
            display(g.get("noise"), 2), verdict)) + " |")
    return lines


def _md5_cell(f: dict) -> str:
    if f["lock_md5"] is None:
        return "not in dvc.lock" if f["md5"] else "absent"
    return f["lock_md5"][:8] + ("" if f["lock_matches"] in (True, None) else " (file differs!)")
