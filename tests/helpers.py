"""Small shared builders for tests: a tiny random model to exercise hooks fast, a fresh copy of the checkout."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Callable

import torch
import yaml
from transformer_lens import HookedTransformer, HookedTransformerConfig


def tiny_model(normalization_type: str = "LNPre", n_key_value_heads: int | None = None, seed: int = 0):
    """A random 4-layer model small enough for exact float32 checks in milliseconds."""
    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(
        n_layers=4, d_model=64, n_heads=4, d_head=16, d_mlp=128, d_vocab=100, n_ctx=64, act_fn="gelu",
        normalization_type=normalization_type, n_key_value_heads=n_key_value_heads,
        positional_embedding_type="rotary" if n_key_value_heads else "standard", seed=seed,
    )
    model = HookedTransformer(cfg).eval()
    for name, param in model.named_parameters():  # TL initialises biases at 0: make them count
        if name.endswith(("b_V", "b_O", "b_in", "b_out")):
            param.data.normal_(0, 0.1)
    torch.set_grad_enabled(False)
    return model


REPO = Path(__file__).resolve().parents[1]
RUN_OUTPUTS = ("metrics/", "figures/", "paper/paper.", "paper/verification.")


def copy_checkout(dest: Path, edit_params: Callable[[dict], None]) -> Path:
    """A git repo at dest holding this checkout's files (not its run outputs), params edited, committed.

    Outputs of a previous run are left out so `dvc repro` must regenerate them, never copy them.
    """
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split("\n")
    for rel in listed:
        if not rel or not (REPO / rel).is_file() or rel.startswith(RUN_OUTPUTS) or rel == "dvc.lock":
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest / rel)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    edit_params(params)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(git + ["add", "-A"], cwd=dest, check=True)
    subprocess.run(git + ["commit", "-qm", "snapshot"], cwd=dest, check=True)
    return dest
