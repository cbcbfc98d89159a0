"""Prompt sets: the authors' 300 rows for gelu-4l (docs/methods.md §2), or an offline text/code set of the same shape.

Either way the result is saved once (erasure.analysis.prompt_files), so no later stage streams or re-tokenizes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from jaxtyping import Int

from erasure.errors import DataError
from erasure.params.load import Params


def train_shards(files: list[str]) -> list[str]:
    """The parquet files of the train split, in the order the 2023 `datasets` streamed them (sorted paths)."""
    return sorted(f for f in files if f.endswith(".parquet") and Path(f).name.startswith("train"))


def authors_rows(dataset: str, revision: str | None, n: int, seq_len: int, seed: int, buffer: int,
                 sources: dict) -> torch.Tensor:
    """The first n rows of the authors' streamed, buffer-shuffled pre-tokenized dataset (docs/methods.md §2).

    The 2023 `datasets` shuffle is re-implemented (erasure/analysis/authors_sampling.py), so the rows do not depend
    on the installed `datasets`. Only the shards the stream reaches are downloaded, into the Hugging Face cache, so
    a later run reads them offline. `sources` collects the commit used.
    """
    from erasure.analysis.authors_sampling import iter_parquet_rows, shuffled_rows_2023
    from erasure.models import hub

    if n == 0:
        return torch.zeros((0, seq_len), dtype=torch.int64)
    what = f"the prompt dataset {dataset}"
    rev = hub.resolve(dataset, revision, what, repo_type="dataset")
    hub.snapshot(dataset, rev, what, repo_type="dataset", allow_patterns=["README.md"])  # caches the file listing
    shards = train_shards(hub.cached_file_list(dataset, rev, what, repo_type="dataset"))
    if not shards:
        raise DataError(f"{what} has no train parquet shards at commit {rev.resolved}")
    sources[dataset] = {"repo": dataset, "commit": rev.resolved}

    def read(shard: str):
        return iter_parquet_rows(hub.download(dataset, shard, rev, what, repo_type="dataset"))

    rows = []
    for tokens in shuffled_rows_2023(shards, read, seed, buffer):
        if len(tokens) < seq_len:
            raise DataError(f"{what}: a row has {len(tokens)} tokens, fewer than prompts.seq_len = {seq_len}")
        rows.append(torch.as_tensor(np.asarray(tokens[:seq_len], dtype=np.int64)))
        if len(rows) == n:
            return torch.stack(rows)
    raise DataError(f"{what} has only {len(rows)} rows, fewer than the {n} asked for: lower n_text/n_code")


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
    sources: dict = {}
    if cfg.source == "authors":
        buffer = cfg.shuffle_buffer
        text = authors_rows(cfg.text_dataset, cfg.text_revision, n_text, seq_len, seed, buffer, sources)
        code = authors_rows(cfg.code_dataset, cfg.code_revision, n_code, seq_len, seed, buffer, sources)
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
        "datasets": sources,
    }
    return tokens, info


