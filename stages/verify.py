"""Stage verify: every claim of paper/claims.yaml against the metrics -> paper/verification.{md,json}.

Exit 1 (after writing both reports) when a claim about the run's model FAILs, or on planted-4l when a
planted-truth check FAILs, unless params `paper.strict` is false. Claims about another model are NOT RUN.
"""
import sys
from pathlib import Path

from erasure.claims import exit_code, load_claims, render_report_md, run_verification
from erasure.cli import run_stage
from erasure.config import load_params
from erasure.io import atomic_write_json, atomic_write_text

REPORT_MD = Path("paper/verification.md")
REPORT_JSON = Path("paper/verification.json")


def main() -> None:
    params = load_params()
    registry = load_claims()
    report = run_verification(".", params.raw, registry)
    atomic_write_json(REPORT_JSON, report)
    atomic_write_text(REPORT_MD, render_report_md(report))
    s_c, s_p = report["summary"]["claims"], report["summary"]["planted"]
    print(f"verify ({report['model']}): claims {s_c['pass']} PASS / {s_c['fail']} FAIL / {s_c['not_run']} NOT RUN"
          + (f"; planted {s_p['pass']} PASS / {s_p['fail']} FAIL" if s_p["total"] else "") + f" -> {REPORT_MD}")
    for result in report["claims"] + report["planted"]:
        if result["status"] == "FAIL":
            print(f"FAIL {result['id']}: {result['reason']}", file=sys.stderr)
    strict = bool(params.raw.get("paper", {}).get("strict", True))
    code = exit_code(report, strict)
    if code:
        print(f"error: {s_c['fail'] + s_p['fail']} check(s) FAILed; see {REPORT_MD} "
              "(set paper.strict: false to build the paper anyway)", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    run_stage(main)
