"""Stage verify: every claim of paper/claims.yaml against the metrics -> paper/verification.{md,json}, and the
run's DVC metrics: metrics/headline/ (each claim's value and verdict, the counts).

A FAIL is a finding, not a crash: the stage exits 0 whatever the verdicts, so `dvc repro` goes on to the paper,
which says what FAILed and why. The gate that exits 1 on a FAIL is `python -m scripts.check_claims`. Claims about
another model are NOT RUN (their values are still shown).
"""
import sys

from erasure.io import OutputSet, round_significant
from erasure.params.load import Params
from erasure.paths import HEADLINE_DIR, VERIFICATION_JSON, VERIFICATION_MD
from erasure.stage import run_stage
from erasure.verification.headline import headline_rows
from erasure.verification.metrics import Metrics
from erasure.verification.registry import load_claims
from erasure.verification.report import render_report_md
from erasure.verification.verify import failed_results, load_truth, run_verification, summary_line


def main(params: Params) -> None:
    registry = load_claims()
    report = run_verification(".", params.raw, registry, compare=params.compare)
    report = round_significant(report, params.outputs.significant_digits)
    truth = load_truth() if report["planted"] else None
    rows = headline_rows(report, registry, Metrics("."), truth)
    with OutputSet() as out:  # replaced together: a fault in one leaves the previous set
        out.json(VERIFICATION_JSON, report)
        out.text(VERIFICATION_MD, render_report_md(report, params.outputs.significant_digits))
        out.json_folder(HEADLINE_DIR, rows)
    print(f"{summary_line(report)} -> {VERIFICATION_MD}")
    failed = failed_results(report)
    for result in failed:
        print(f"FAIL {result['id']}: {result['reason']}", file=sys.stderr)
    if failed:
        print(f"note: {len(failed)} check(s) FAILed; the paper reports them. `python -m scripts.check_claims` "
              "exits 1 on them (for CI)", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
