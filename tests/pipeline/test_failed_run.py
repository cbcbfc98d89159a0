"""A failed `dvc repro` leaves the checkout as it was (issue 18): DVC deletes a stage's outputs before running it
unless they are `persist: true`, and the committed ones (metrics/, plots/, figures/, paper/) are in git, so a
stage that stops on its first line (no Hub, a bad param, a bad input file) would show up as ` D ...` in
`git status`. Each case runs real `dvc repro` in a copy of this checkout with its committed outputs, committed to a
fresh git repository: afterwards `git status --porcelain` shows at most the edit the case itself made.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, run_dvc

pytestmark = pytest.mark.slow
GIT = ["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost"]


def checkout_with_outputs(dest: Path, model: str) -> Path:
    """This checkout's files, committed outputs and dvc.lock included, `model` selected, committed at dest."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\n")
    for rel in listed:
        if rel and (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["model"] = model
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(GIT + ["add", "-A"], cwd=dest, check=True)
    subprocess.run(GIT + ["commit", "-qm", "checkout"], cwd=dest, check=True)
    return dest


def git_status(repo: Path) -> list[str]:
    return subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.splitlines()


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def test_no_hub_fails_in_one_line_and_deletes_nothing(tmp_path, progress):
    """gelu-4l (the default model) with no Hub and an empty Hugging Face cache: the first stage stops."""
    repo = checkout_with_outputs(tmp_path / "repo", "gelu-4l")
    (tmp_path / "hf").mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = run_dvc(["repro"], repo, progress, timeout=300, env=env)
    assert result.returncode != 0
    errors = error_lines(result.stdout)
    assert len(errors) == 1 and "gelu-4l weights" in errors[0], result.stdout[-3000:]
    assert "Traceback" not in result.stdout
    assert (repo / "metrics" / "inputs.json").exists()
    assert git_status(repo) == []


@pytest.mark.parametrize("case", ["bad param", "bad input file"])
def test_a_later_stage_that_fails_keeps_its_outputs(tmp_path, progress, case):
    """Stage compare (no model, no data/ input) fails on a bad param or a corrupt sweep file: its committed
    outputs stay, and git sees only the case's own edit."""
    repo = checkout_with_outputs(tmp_path / "repo", "planted-4l")
    if case == "bad param":
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["compare"]["dpi"] = 10
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        edited, message = "params.yaml", "error: compare.dpi = 10 is not allowed"
    else:
        (repo / "sweep" / "planted-4l.json").write_text('{"model": \n')
        edited, message = "sweep/planted-4l.json", "error: sweep/planted-4l.json is not valid JSON at line 2"
    outputs = [repo / "metrics" / "comparison.json", repo / "figures" / "comparison.png"]
    before = [p.read_bytes() for p in outputs]
    result = run_dvc(["repro", "--single-item", "compare"], repo, progress, timeout=300)
    assert result.returncode != 0
    errors = error_lines(result.stdout)
    assert len(errors) == 1 and errors[0].startswith(message), result.stdout[-3000:]
    assert [p.read_bytes() for p in outputs] == before
    assert git_status(repo) == [f" M {edited}"]
