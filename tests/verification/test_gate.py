"""The gate, `python -m scripts.check_claims`, as a user runs it after `dvc repro`: exit 1 when a claim about the
run's model (or a planted check) FAILs, 0 when none does, 2 (one line) when there is no report for this model.
The verify stage itself exits 0 whatever the verdicts (tests/pipeline: the paper is built after a FAIL)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import synthetic_metrics as tc
from erasure.verification.verify import run_verification
from helpers import ROOT, write_params


def gate(cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "scripts.check_claims"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def report_tree(root: Path, model: str, files: dict, truth=None) -> None:
    tc.write_tree(root, files, model)
    write_params(root, model=model)
    report = run_verification(root, {"model": model}, tc.REGISTRY, (lambda: truth) if truth else None)
    (root / "paper").mkdir(exist_ok=True)
    (root / "paper/verification.json").write_text(json.dumps(report))


def test_every_claim_passing_exits_0(tmp_path):
    report_tree(tmp_path, "gelu-4l", tc.gelu_metrics(0.3))
    proc = gate(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1].startswith(f"verify (gelu-4l): claims {len(tc.REGISTRY['claims'])} PASS / 0 FAIL")


def test_a_failed_claim_exits_1_and_names_it(tmp_path):
    files = tc.gelu_metrics(0.3)
    tc.set_claim(files, next(c for c in tc.REGISTRY["claims"] if c["id"] == "dla_slope"), 3.0, half_width=0.0)
    report_tree(tmp_path, "gelu-4l", files)
    proc = gate(tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0].startswith("FAIL dla_slope: ")
    assert "1 FAIL" in proc.stdout.splitlines()[-1] and proc.stderr == ""


def test_not_run_claims_do_not_fail_the_gate(tmp_path):
    report_tree(tmp_path, "smollm2-135m", tc.synthetic_metrics("smollm2-135m"))
    proc = gate(tmp_path)
    assert proc.returncode == 0 and f"{len(tc.REGISTRY['claims'])} NOT RUN" in proc.stdout


@pytest.mark.parametrize("case, message", [
    ("absent", "paper/verification.json not found: run `dvc repro` to write it"),
    ("another model", "paper/verification.json is from 'smollm2-135m' but params.yaml selects 'gelu-4l'"),
    ("not a report", "paper/verification.json is not a verification report"),
])
def test_no_report_for_this_model_is_one_line_exit_2(case, message, tmp_path):
    if case == "another model":
        report_tree(tmp_path, "smollm2-135m", tc.synthetic_metrics("smollm2-135m"))
    else:
        (tmp_path / "paper").mkdir()
        if case == "not a report":
            (tmp_path / "paper/verification.json").write_text("[1, 2]")
    write_params(tmp_path, model="gelu-4l")
    proc = gate(tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and message in proc.stderr, proc.stderr
