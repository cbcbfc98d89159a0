"""The README's remote workflow with a local directory as the DVC remote: run, `dvc push`, a clone without data,
`dvc pull`, then `dvc status` is clean and `dvc repro` skips every stage. And a fresh clone of this repository as
committed (params.yaml selects gelu-4l, dvc.lock records the planted-4l run): after `dvc pull`, `dvc status` names
the `model` param, and `dvc exp run -S model=planted-4l` alone makes it clean with no stage run."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow
GIT = ["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost"]


def _dvc(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(["dvc", *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"dvc {' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _status(cwd: Path) -> dict:
    return json.loads(_dvc(["status", "--json"], cwd).stdout)


def _cached_outs(repo: Path) -> list[str]:
    """The outputs DVC keeps in its cache (and pushes), as DVC itself lists them; the rest are in git."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        return sorted(out.def_path for out in dvc_repo.index.outs if out.use_cache)


def _pushed_clone(tmp_path: Path, planted_run: Path, edit_params=None) -> tuple[Path, Path]:
    """(origin, clone): a copy of the end-to-end planted run (its own git history and DVC cache), params.yaml
    edited by `edit_params(path)`, a local DVC remote, pushed and committed; then a git clone of it (no data)."""
    origin = tmp_path / "origin"
    shutil.copytree(planted_run, origin, symlinks=True)
    if edit_params is not None:
        edit_params(origin / "params.yaml")
    remote = tmp_path / "remote"
    _dvc(["remote", "add", "-d", "storage", str(remote)], origin)
    subprocess.run(GIT + ["add", "-A"], cwd=origin, check=True)
    subprocess.run(GIT + ["commit", "-qm", "run + remote"], cwd=origin, check=True)
    _dvc(["push"], origin)
    assert any(p.is_file() for p in remote.rglob("*")), "dvc push wrote nothing to the remote"

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True)
    cached = _cached_outs(clone)
    assert cached and not any((clone / path).exists() for path in cached), "the clone must start without data"
    assert _status(clone), "dvc status must report the missing data before the pull (else it proves nothing)"
    return origin, clone


def _skipped_every_stage(output: str, clone: Path) -> None:
    stages = yaml.safe_load((clone / "dvc.yaml").read_text())["stages"]
    assert "Running stage" not in output, output
    for stage in stages:
        assert f"Stage '{stage}' didn't change, skipping" in output, (stage, output)


def _git_changes(clone: Path) -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True,
                          check=True).stdout


def test_push_clone_pull_then_repro_skips_everything(tmp_path, planted_run):
    """The run's params committed with it: `dvc pull` alone gives a clean status."""
    origin, clone = _pushed_clone(tmp_path, planted_run)
    cached = _cached_outs(clone)
    _dvc(["pull"], clone)
    for path in cached:
        pulled, original = clone / path, origin / path
        assert sorted(p.relative_to(pulled) for p in pulled.rglob("*")) == \
            sorted(p.relative_to(original) for p in original.rglob("*")), path
        for f in (p for p in original.rglob("*") if p.is_file()):
            assert (pulled / f.relative_to(original)).read_bytes() == f.read_bytes(), f
    assert _status(clone) == {}

    _skipped_every_stage(_dvc(["repro"], clone).stdout, clone)
    assert _git_changes(clone) == ""


def test_fresh_clone_of_the_committed_layout_is_clean_after_one_command(tmp_path, planted_run):
    """As this repository is committed: params.yaml selects gelu-4l (read from git HEAD), the lock and the data are
    planted-4l's. After `dvc pull` the status names `model`; `dvc exp run -S model=planted-4l` runs no stage and
    leaves a clean status, params.yaml's `model` line the only change (the README's remote section)."""
    from dvc.utils.hydra import apply_overrides

    from helpers import ROOT

    committed_model = yaml.safe_load(subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=ROOT, check=True,
                                                    capture_output=True, text=True).stdout)["model"]
    assert committed_model != "planted-4l"  # else this is the test above
    _, clone = _pushed_clone(tmp_path, planted_run,
                             lambda path: apply_overrides(path, [f"model={committed_model}"]))
    _dvc(["pull"], clone)
    status = _status(clone)
    assert status, "after the pull, the stages that read `model` are reported changed"
    for stage, entries in status.items():  # only params.yaml's `model` (and the model entry it selects)
        assert len(entries) == 1 and list(entries[0]) == ["changed deps"], (stage, entries)
        deps = entries[0]["changed deps"]
        assert list(deps) == ["params.yaml"] and deps["params.yaml"]["model"] == "modified", (stage, entries)

    _skipped_every_stage(_dvc(["exp", "run", "-S", "model=planted-4l"], clone).stdout, clone)
    assert _status(clone) == {}
    assert _git_changes(clone) == " M params.yaml\n"
    _skipped_every_stage(_dvc(["repro"], clone).stdout, clone)
