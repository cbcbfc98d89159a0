"""Prompt sets: the authors' 300 rows for gelu-4l (docs/methods.md §2), or an offline text/code set of the same shape.

Either way the result is saved once as `tokens.npy` with its sha256, so no later stage streams or re-tokenizes.
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

TOKENS_FILE = "tokens.npy"
INFO_FILE = "tokens.json"


def _sha256(tokens: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(tokens, dtype=np.int64).tobytes()).hexdigest()


def authors_rows(dataset: str, n: int, seq_len: int, seed: int, buffer: int, timeout_s: float) -> torch.Tensor:
    """The first n rows of a streamed, buffer-shuffled pre-tokenized dataset (load_data.py of the authors)."""
    from datasets import load_dataset

    from erasure.models.hub import require_hub

    if n == 0:
        return torch.zeros((0, seq_len), dtype=torch.int64)
    require_hub(dataset, f"the prompt dataset {dataset}", timeout_s, repo_type="dataset")
    stream = load_dataset(dataset, split="train", streaming=True).shuffle(seed=seed, buffer_size=buffer)
    rows = [torch.tensor(row["tokens"][:seq_len]) for _, row in zip(range(n), stream)]
    return torch.stack(rows).long()


def offline_rows(kind: str, n: int, seq_len: int, seed: int, tokenizer, bos: int, separator: int) -> torch.Tensor:
    """n rows of [BOS] + seq_len-1 tokens from the offline corpus, documents joined by `separator`, seeded order."""
    from erasure.analysis.corpus import iter_documents

    if n == 0:
        return torch.zeros((0, seq_len), dtype=torch.int64)
    docs = list(iter_documents(kind))
    order = np.random.default_rng(seed).permutation(len(docs))
    need, stream = n * (seq_len - 1), []
    for i in order:
        stream += tokenizer.encode(docs[i], add_special_tokens=False) + [separator]
        if len(stream) >= need:
            break
    if len(stream) < need:
        raise DataError(
            f"the offline {kind} corpus has {len(stream)} tokens, fewer than the {need} that n_{kind} = {n} "
            f"prompts of seq_len {seq_len} need: lower n_{kind} or seq_len"
        )
    body = torch.tensor(stream[:need], dtype=torch.int64).view(n, seq_len - 1)
    return torch.cat([torch.full((n, 1), bos, dtype=torch.int64), body], dim=1)


def build_prompts(params: Params, tokenizer, bos: int) -> tuple[Int[torch.Tensor, "n seq"], dict]:
    """Text rows then code rows, permuted with torch.manual_seed(seed) like the authors; returns tokens, info."""
    cfg = params.entry.prompts
    n_text, n_code, seq_len, seed = cfg.n_text, cfg.n_code, cfg.seq_len, cfg.seed
    if cfg.source == "authors":
        timeout = params.entry.hub_timeout_s
        text = authors_rows(cfg.text_dataset, n_text, seq_len, seed, cfg.shuffle_buffer, timeout)
        code = authors_rows(cfg.code_dataset, n_code, seq_len, seed, cfg.shuffle_buffer, timeout)
    else:
        stated = params.entry.separator_token_id
        separator = tokenizer.eos_token_id if stated is None else stated
        text = offline_rows("text", n_text, seq_len, seed, tokenizer, bos, separator)
        code = offline_rows("code", n_code, seq_len, seed + 1, tokenizer, bos, separator)
    tokens = torch.cat([text, code])
    is_code = torch.cat([torch.zeros(n_text, dtype=torch.bool), torch.ones(n_code, dtype=torch.bool)])
    torch.manual_seed(seed)
    perm = torch.randperm(len(tokens))
    tokens, is_code = tokens[perm], is_code[perm]
    if len(set(map(tuple, tokens.tolist()))) != len(tokens):
        print("warning: the prompt set has duplicate rows")
    info = {
        "model": params.model,
        "source": cfg.source,
        "n_text": n_text,
        "n_code": n_code,
        "seq_len": seq_len,
        "seed": seed,
        "bos_token_id": bos,
        "bos_at_position_0": bool((tokens[:, 0] == bos).all()),
        "is_code": is_code.tolist(),
    }
    return tokens, info


def save_prompts(out_dir: Path, tokens: torch.Tensor, info: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    array = tokens.numpy().astype(np.int64)
    np.save(out_dir / TOKENS_FILE, array)
    info = {**info, "shape": list(array.shape), "sha256": _sha256(array)}
    (out_dir / INFO_FILE).write_text(json.dumps(info, indent=1) + "\n")


def load_prompt_info(prompt_dir: str | Path = "data/prompts") -> dict:
    path = Path(prompt_dir) / INFO_FILE
    if not path.exists():
        raise DataError(f"{path} not found: run `dvc repro prompts` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise DataError(f"{path} is corrupt (not JSON): re-run `dvc repro prompts`") from None


def load_prompts(prompt_dir: str | Path = "data/prompts") -> Int[torch.Tensor, "n seq"]:
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
