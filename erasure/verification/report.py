"""paper/verification.md: the verification report as Markdown tables, with every reason in full."""
from __future__ import annotations

from typing import Any

from erasure.mechanism.names import display_token
from erasure.verification.verify import NOT_RUN, PASS


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
    if isinstance(value, dict):
        return ", ".join(f"{k}: {display(v, digits)}" for k, v in value.items())
    if isinstance(value, list):
        if value and all(isinstance(v, dict) and "token" in v for v in value):
            value = [v["token"] for v in value]
        return ", ".join(display_token(v) if isinstance(v, str) else display(v, digits) for v in value)
    return str(value)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_report_md(report: dict) -> str:
    """paper/verification.md: one row per claim, then every planted check, then the reasons in full."""
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
        f"Claims: {s_c['pass']} PASS, {s_c['fail']} FAIL, {s_c['not_run']} NOT RUN of {s_c['total']}."
        + (f" Planted-truth checks: {s_p['pass']} PASS, {s_p['fail']} FAIL of {s_p['total']}." if s_p["total"] else ""),
        "",
    ]
    lines += _table(report["claims"], "paper")
    if report["planted"]:
        lines += ["", "## Planted-truth checks (planted-4l)", ""]
        lines += _table(report["planted"], "planted")
    notes = [r for r in report["claims"] + report["planted"] if r["status"] != PASS or r["details"]]
    if notes:
        lines += ["", "## Details", ""]
        for r in notes:
            lines.append(f"- **{r['id']}** ({r['status']}){': ' + r['reason'] if r['reason'] else ''}")
            for d in r["details"]:
                keys = ", ".join(f"`{k}`" for k in dict.fromkeys(d.get("keys") or []))
                lines.append(f"  - {'ok' if d['ok'] else 'NOT ok'} `{d['check']}`: {d['detail']}"
                             + (f" ({keys})" if keys else ""))
    return "\n".join(lines) + "\n"


def _table(results: list[dict], kind: str) -> list[str]:
    head = "paper" if kind == "paper" else "expected"
    lines = [f"| id | claim | {head} | reproduced | difference | tolerance | status | stage | md5 (dvc.lock) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        stages = ", ".join(dict.fromkeys(f["stage"] or "?" for f in r["files"])) or "—"
        md5s = ", ".join(_md5_cell(f) for f in r["files"]) or "—"
        status = r["status"] + (f" ({r['reason']})" if r["status"] == NOT_RUN and r["reason"] else "")
        lines.append("| " + " | ".join(_cell(c) for c in (
            r["id"], r["text"], display(r["paper_value"]), display(r["reproduced"]), display(r["diff"], 2),
            r["tolerance"] or "—", status, stages, md5s)) + " |")
    return lines


def _md5_cell(f: dict) -> str:
    if f["lock_md5"] is None:
        return "not in dvc.lock" if f["md5"] else "absent"
    return f["lock_md5"][:8] + ("" if f["lock_matches"] in (True, None) else " (file differs!)")
