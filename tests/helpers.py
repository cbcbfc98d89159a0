"""Small shared builders for tests: a tiny random model to exercise hooks fast, the repository's params, a fresh
copy of the checkout."""
from __future__ import annotations

import copy
import io
import os
import shutil
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

import torch
import yaml
from transformer_lens import HookedTransformer, HookedTransformerConfig

ROOT = Path(__file__).resolve().parents[1]


@cache
def _repo_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def repo_params(model: str = "planted-4l") -> dict:
    """A fresh copy of the repository's params.yaml with `model` selected."""
    raw = copy.deepcopy(_repo_params())
    raw["model"] = model
    return raw


def write_params(directory: Path, edit=None, model: str = "planted-4l") -> Path:
    """params.yaml (the repository's, `model` selected, then `edit(raw)` applied) written into `directory`."""
    raw = repo_params(model)
    if edit is not None:
        edit(raw)
    path = directory / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def tiny_model(normalization_type: str = "LNPre", n_key_value_heads: int | None = None, seed: int = 0,
               post_norm: bool = False):
    """A random 4-layer model small enough for exact float32 checks in milliseconds.

    `post_norm`: Gemma 2/3's norms after each sublayer (RMS, with a random weight), as TransformerLens builds them.
    """
    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(
        n_layers=4, d_model=64, n_heads=4, d_head=16, d_mlp=128, d_vocab=100, n_ctx=64, act_fn="gelu",
        normalization_type=normalization_type, n_key_value_heads=n_key_value_heads,
        positional_embedding_type="rotary" if n_key_value_heads else "standard", seed=seed,
        use_normalization_before_and_after=post_norm,
    )
    model = HookedTransformer(cfg).eval()
    for name, param in model.named_parameters():  # TL initialises biases at 0 and norm weights at 1: make them count
        if name.endswith(("b_V", "b_O", "b_in", "b_out")):
            param.data.normal_(0, 0.1)
        if name.endswith(("ln1_post.w", "ln2_post.w")):
            param.data.uniform_(0.5, 1.5)
    torch.set_grad_enabled(False)
    return model


RUN_OUTPUTS = ("metrics/", "plots/", "figures/", "paper/paper.", "paper/verification.")
COMMITTED_RUN = ("dvc.lock", "metrics", "plots", "figures", "paper/paper.md", "paper/paper.html",
                 "paper/verification.md", "paper/verification.json")


def committed_run(dest: Path) -> Path:
    """The committed run's outputs (dvc.lock, metrics/, plots/, figures/, paper and report) as at git HEAD, written
    under dest. Tests about the committed run read these, never the workspace's, which an applied experiment
    (`dvc exp run -S ...`) replaces with its own run. Skips outside a git checkout."""
    import pytest

    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD", "--", *COMMITTED_RUN], cwd=ROOT,
                             capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"the committed run is read from git HEAD: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest


SNAPSHOT_DATE = "2024-01-01T00:00:00+00:00"  # fixed: two copies of one checkout get one commit (the paper names it)


def copy_checkout(dest: Path, edit_params: Callable[[dict], None]) -> Path:
    """A git repo at dest holding this checkout's files (not its run outputs), the committed params.yaml edited,
    committed.

    Outputs of a previous run are left out so `dvc repro` must regenerate them, never copy them. The commit is
    dated SNAPSHOT_DATE, so copies with the same files have the same commit (and build the same paper).
    """
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\n")
    for rel in listed:
        if not rel or not (ROOT / rel).is_file() or rel.startswith(RUN_OUTPUTS) or rel == "dvc.lock":
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    # params.yaml as committed: an experiment applied to the workspace (`dvc exp run -S ...`) edits it, and the
    # end-to-end runs are compared with the stored reference of the committed params
    params = yaml.safe_load(subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=ROOT, capture_output=True,
                                           text=True, check=True).stdout)
    edit_params(params)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost"]
    dated = {**os.environ, "GIT_AUTHOR_DATE": SNAPSHOT_DATE, "GIT_COMMITTER_DATE": SNAPSHOT_DATE}
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(git + ["add", "-A"], cwd=dest, check=True)
    subprocess.run(git + ["commit", "-qm", "snapshot"], cwd=dest, check=True, env=dated)
    return dest


def run_dvc(args: list[str], cwd: Path, say: Callable[[str], None], timeout: float,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """`dvc ARGS` in cwd, saying each stage as DVC starts it (a run takes minutes); output collected as
    subprocess.run's (stdout and stderr together). The process is ended by its own PID on timeout."""
    label = f"dvc {' '.join(args)} in {cwd.name}"
    say(f"{label}: starting")
    start = time.monotonic()
    proc = subprocess.Popen(["dvc", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Running stage"):
                say(f"{label}: {line.strip().rstrip(':')} ({time.monotonic() - start:.0f} s)")
        proc.wait()
    finally:
        timer.cancel()
    say(f"{label}: exit {proc.returncode} after {time.monotonic() - start:.0f} s")
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(lines), "")
