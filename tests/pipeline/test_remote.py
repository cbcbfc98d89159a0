"""The README's remote workflow with a local directory as the DVC remote: run, `dvc push`, a clone without data,
`dvc pull`, then `dvc status` is clean and `dvc repro` skips every stage."""
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


def test_push_clone_pull_then_repro_skips_everything(tmp_path, planted_run):
    """From a copy of the end-to-end planted run (its own git history and DVC cache)."""
    origin = tmp_path / "origin"
    shutil.copytree(planted_run, origin, symlinks=True)
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

    _dvc(["pull"], clone)
    for path in cached:
        pulled, original = clone / path, origin / path
        assert sorted(p.relative_to(pulled) for p in pulled.rglob("*")) == \
            sorted(p.relative_to(original) for p in original.rglob("*")), path
        for f in (p for p in original.rglob("*") if p.is_file()):
            assert (pulled / f.relative_to(original)).read_bytes() == f.read_bytes(), f
    assert _status(clone) == {}

    stages = yaml.safe_load((clone / "dvc.yaml").read_text())["stages"]
    repro = _dvc(["repro"], clone).stdout
    assert "Running stage" not in repro, repro
    for stage in stages:
        assert f"Stage '{stage}' didn't change, skipping" in repro, (stage, repro)
    changed = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True,
                             check=True).stdout
    assert changed == "", changed
