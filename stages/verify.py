"""Stage verify: every claim of paper/claims.yaml against the metrics -> paper/verification.{md,json}, and the
run's DVC metrics: metrics/headline/ (each claim's value and verdict, the counts).

Exit 1 (after writing both reports) when a claim about the run's model FAILs, or on planted-4l when a
planted-truth check FAILs, unless params `paper.strict` is false. Claims about another model are NOT RUN.
"""
import sys

from erasure.io import atomic_path, atomic_write_json, atomic_write_text, round_significant
from erasure.params.load import load_params
from erasure.paths import HEADLINE_DIR, VERIFICATION_JSON, VERIFICATION_MD
from erasure.stage import run_stage
from erasure.verification.headline import headline_rows
from erasure.verification.metrics import Metrics
from erasure.verification.registry import load_claims
from erasure.verification.report import render_report_md
from erasure.verification.verify import exit_code, load_truth, run_verification


def main() -> None:
    params = load_params()
    registry = load_claims()
    report = round_significant(run_verification(".", params.raw, registry), params.outputs.significant_digits)
    truth = load_truth() if report["planted"] else None
    rows = headline_rows(report, registry, Metrics("."), truth)
    with atomic_path(HEADLINE_DIR) as tmp:
        tmp.mkdir()
        for name, row in rows.items():
            atomic_write_json(tmp / f"{name}.json", row)
    atomic_write_json(VERIFICATION_JSON, report)
    atomic_write_text(VERIFICATION_MD, render_report_md(report))
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
