"""The gate: exit 1 when a claim about the run's model FAILs (on planted-4l: a planted-truth check).

    dvc repro && python -m scripts.check_claims

`dvc repro` builds the report and the paper whatever the verdicts (a FAIL is a finding); this command is for CI
and reviewers who want a red light. It reads paper/verification.json, the `verify` stage's output, and prints one
line per FAIL with its reason. Exit 0 = every checked claim PASSes (NOT RUN claims are about another model),
1 = some FAIL, 2 = no report, or a report from another model than params.yaml selects (run `dvc repro`).
"""
import sys

from erasure.errors import DataError
from erasure.io import read_json
from erasure.params.load import Params
from erasure.paths import VERIFICATION_JSON
from erasure.stage import run_stage
from erasure.verification.verify import failed_results, summary_line


def main(params: Params) -> None:
    report = read_json(VERIFICATION_JSON, "run `dvc repro` to write it")
    if not isinstance(report, dict) or not isinstance(report.get("summary"), dict):
        raise DataError(f"{VERIFICATION_JSON} is not a verification report: run `dvc repro` to rewrite it")
    if report.get("model") != params.model:
        raise DataError(f"{VERIFICATION_JSON} is from {report.get('model')!r} but params.yaml selects "
                        f"{params.model!r}: run `dvc repro` first")
    failed = failed_results(report)
    for result in failed:
        print(f"FAIL {result['id']}: {result['reason']}")
    print(summary_line(report))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    run_stage(main)
