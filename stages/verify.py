"""Stage verify: every claim of paper/claims.yaml against the metrics -> paper/verification.{md,json}, and the
run's DVC metrics: metrics/headline/ (each claim's value and verdict, the counts).

Exit 1 (after writing both reports) when a claim about the run's model FAILs, or on planted-4l when a
planted-truth check FAILs, unless params `paper.strict` is false. Claims about another model are NOT RUN.
"""
import sys
from pathlib import Path

from erasure.io import OutputSet, json_text, round_significant
from erasure.params.load import load_params
from erasure.paths import HEADLINE_DIR, VERIFICATION_JSON, VERIFICATION_MD
from erasure.stage import run_stage
from erasure.verification.headline import headline_rows
from erasure.verification.metrics import Metrics
from erasure.verification.registry import load_claims
from erasure.verification.report import render_report_md
from erasure.verification.verify import exit_code, load_truth, run_verification


def write_headline(folder: Path, rows: dict[str, dict]) -> None:
    """metrics/headline/: one small JSON file per claim / planted check (written into the folder's temp)."""
    folder.mkdir()
    for name, row in rows.items():
        (folder / f"{name}.json").write_text(json_text(row, path=HEADLINE_DIR / f"{name}.json"), encoding="utf-8")


def main() -> None:
    params = load_params()
    registry = load_claims()
    report = round_significant(run_verification(".", params.raw, registry), params.outputs.significant_digits)
    truth = load_truth() if report["planted"] else None
    rows = headline_rows(report, registry, Metrics("."), truth)
    with OutputSet() as out:  # replaced together: a fault in one leaves the previous set
        out.json(VERIFICATION_JSON, report)
        out.text(VERIFICATION_MD, render_report_md(report))
        out.file(HEADLINE_DIR, lambda tmp: write_headline(tmp, rows))
    s_c, s_p = report["summary"]["claims"], report["summary"]["planted"]
    print(f"verify ({report['model']}): claims {s_c['pass']} PASS / {s_c['fail']} FAIL / {s_c['not_run']} NOT RUN"
          + (f"; planted {s_p['pass']} PASS / {s_p['fail']} FAIL" if s_p["total"] else "") + f" -> {VERIFICATION_MD}")
    for result in report["claims"] + report["planted"]:
        if result["status"] == "FAIL":
            print(f"FAIL {result['id']}: {result['reason']}", file=sys.stderr)
    code = exit_code(report, params.paper.strict)
    if code:
        print(f"error: {s_c['fail'] + s_p['fail']} check(s) FAILed; see {VERIFICATION_MD} "
              "(set paper.strict: false to build the paper anyway)", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    run_stage(main)
