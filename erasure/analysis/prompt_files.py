"""The saved prompt set (data/prompts): `tokens.npy` and `tokens.json` with its sha256, written once by the prompts
stage and read, hash-checked, by every later stage (which so never depend on how the prompts were built)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Int

from erasure.errors import DataError
from erasure.paths import PROMPTS_DIR

TOKENS_FILE = "tokens.npy"

INFO_FILE = "tokens.json"


def _sha256(tokens: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(tokens, dtype=np.int64).tobytes()).hexdigest()


def save_prompts(out_dir: Path, tokens: torch.Tensor, info: dict) -> dict:
    """Write tokens.npy and tokens.json (info plus shape and sha256); returns the info written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    array = tokens.numpy().astype(np.int64)
    np.save(out_dir / TOKENS_FILE, array)
    info = {**info, "shape": list(array.shape), "sha256": _sha256(array)}
    (out_dir / INFO_FILE).write_text(json.dumps(info, indent=1) + "\n")
    return info


def load_prompt_info(prompt_dir: str | Path = PROMPTS_DIR) -> dict:
    path = Path(prompt_dir) / INFO_FILE
    if not path.exists():
        raise DataError(f"{path} not found: run `dvc repro prompts` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise DataError(f"{path} is corrupt (not JSON): re-run `dvc repro prompts`") from None


def load_prompts(prompt_dir: str | Path = PROMPTS_DIR) -> Int[torch.Tensor, "n seq"]:
    """The saved prompt tokens, after checking them against the stored sha256."""
    info = load_prompt_info(prompt_dir)
    path = Path(prompt_dir) / TOKENS_FILE
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path} is corrupt or missing ({type(err).__name__}): re-run `dvc repro prompts`") from None
    if array.dtype != np.int64 or array.ndim != 2 or _sha256(array) != info.get("sha256"):
        raise DataError(f"{path} does not match the sha256 in {INFO_FILE}: it is corrupt; re-run `dvc repro prompts`")
    return torch.from_numpy(array)
