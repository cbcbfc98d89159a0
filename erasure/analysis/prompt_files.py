"""The saved prompt set (data/prompts): `tokens.npy` and `tokens.json` with its sha256, written once by the prompts
stage and read, checked, by every later stage (which so never depend on how the prompts were built).

Reading checks the file against itself (sha256, dtype) and against params: the model it was built for, the shape
params ask for (n_text + n_code rows of seq_len tokens, seq_len within n_ctx) and every id within the model's
vocabulary (a negative or too large id would wrap around or index past the embedding).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Int

from erasure.errors import DataError
from erasure.params.load import Params
from erasure.paths import PROMPTS_DIR
from erasure.schemas import PromptInfo, read_record

TOKENS_FILE = "tokens.npy"
INFO_FILE = "tokens.json"
REMEDY = "re-run `dvc repro prompts`"


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


def load_prompt_info(params: Params, prompt_dir: str | Path = PROMPTS_DIR) -> PromptInfo:
    """tokens.json, checked, of a prompt set built for the selected model."""
    path = Path(prompt_dir) / INFO_FILE
    info = read_record(path, PromptInfo, REMEDY if path.exists() else "run `dvc repro prompts` first")
    if info.model != params.model:
        raise DataError(f"{prompt_dir} was built for {info.model}, not {params.model}: run `dvc repro prompts`")
    return info


def load_prompts(params: Params, prompt_dir: str | Path = PROMPTS_DIR) -> tuple[Int[torch.Tensor, "n seq"], PromptInfo]:
    """The saved prompt tokens and their info, after checking them against the stored sha256 and params."""
    info = load_prompt_info(params, prompt_dir)
    path = Path(prompt_dir) / TOKENS_FILE
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path} not found: {REMEDY}") from None
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path} is corrupt ({type(err).__name__}): {REMEDY}") from None
    if not isinstance(array, np.ndarray):  # an .npz archive under the .npy name
        array.close()
        raise DataError(f"{path} is an .npz archive, not one .npy array: it is corrupt; {REMEDY}")
    array = np.ascontiguousarray(array)  # a Fortran-ordered file holds the same ids; torch wants them row-major
    if array.dtype != np.int64 or array.ndim != 2 or _sha256(array) != info.sha256:
        raise DataError(f"{path} does not match the sha256 in {INFO_FILE}: it is corrupt; {REMEDY}")
    cfg, base = params.entry.prompts, f"models.{params.model}.prompts"
    expected = (cfg.n_text + cfg.n_code, cfg.seq_len)
    if array.shape != expected:
        raise DataError(f"{path} has shape {array.shape}, but {base} asks for (n_text + n_code, seq_len) = "
                        f"{expected}: {REMEDY}")
    d_vocab = params.shape.d_vocab
    bad = np.argwhere((array < 0) | (array >= d_vocab))
    if len(bad):
        row, pos = (int(i) for i in bad[0])
        raise DataError(f"{path} holds token id {int(array[row, pos])} at row {row}, position {pos} ({len(bad)} such "
                        f"ids): ids must be from 0 to {d_vocab - 1} (d_vocab of {params.model}); {REMEDY}")
    return torch.from_numpy(array), info
