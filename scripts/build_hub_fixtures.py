"""Build the stand-in Hub's repos (``tests/hub_standin.py``): gelu-4l's four repos and gpt2, random, real formats.

Everything is seeded: the same arguments give the same bytes. Nothing here is committed as a file; tests and the
end-to-end run build it into a temporary folder.

Usage: ``python -m scripts.build_hub_fixtures ROOT`` (ROOT must be empty or not exist).
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SEQ_LEN = 1024  # ids per row, as in NeelNanda's tokenized datasets
BOS_ID = 1
FIRST_RANDOM_ID = 3  # ids 0, 1, 2 are <|EOS|>, <|BOS|>, <|PAD|>


@dataclass(frozen=True)
class ShardSpec:
    """Arguments of ``write_token_shards`` for one dataset repo."""

    n_shards: int
    rows_per_shard: int
    seed: int
    marker_base: int
    vocab_size: int
    row_group_size: int


TOKENIZER_VOCAB = 16384  # the stand-in tokenizer's vocabulary (erasure/assets/planted_tokenizer.json)
GELU4L_DATASETS = {
    "NeelNanda/c4-tokenized-2b": ShardSpec(5, 60, seed=1, marker_base=10_000, vocab_size=TOKENIZER_VOCAB,
                                           row_group_size=16),
    "NeelNanda/code-tokenized": ShardSpec(3, 40, seed=2, marker_base=11_000, vocab_size=TOKENIZER_VOCAB,
                                          row_group_size=16),
}


def write_token_shards(
    folder: Path,
    n_shards: int,
    rows_per_shard: int,
    seed: int,
    marker_base: int,
    vocab_size: int,
    row_group_size: int,
) -> list[Path]:
    """Write ``folder/data/train-{i:05d}-of-{n:05d}-<16 hex>.parquet``: one column ``tokens`` (list<int64>).

    Each row has SEQ_LEN ids: BOS (1) first, then a marker id ``marker_base + global row index`` (shard-major), so
    a reader can tell which row it got, then seeded random ids in [3, vocab_size). Small row groups, as a
    streamed read sees them. The 16 hex are the start of the shard's sha256. Returns the shard paths in order.
    """
    for name, value, low in (("n_shards", n_shards, 1), ("rows_per_shard", rows_per_shard, 1),
                             ("row_group_size", row_group_size, 1), ("marker_base", marker_base, FIRST_RANDOM_ID)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name} = {value!r} is not allowed: must be an integer >= {low}")
    if marker_base + n_shards * rows_per_shard > vocab_size:
        raise ValueError(f"marker ids {marker_base}..{marker_base + n_shards * rows_per_shard - 1} must be "
                         f"< vocab_size = {vocab_size}")
    data = Path(folder) / "data"
    if data.exists() and any(data.glob("train-*.parquet")):
        raise FileExistsError(f"{data} already holds train-*.parquet shards")
    data.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    offsets = pa.array(np.arange(rows_per_shard + 1, dtype=np.int32) * SEQ_LEN)
    paths = []
    for i in range(n_shards):
        tokens = rng.integers(FIRST_RANDOM_ID, vocab_size, size=(rows_per_shard, SEQ_LEN), dtype=np.int64)
        tokens[:, 0] = BOS_ID
        tokens[:, 1] = marker_base + i * rows_per_shard + np.arange(rows_per_shard)
        column = pa.ListArray.from_arrays(offsets, pa.array(tokens.reshape(-1)))
        buf = io.BytesIO()
        pq.write_table(pa.table({"tokens": column}), buf, row_group_size=row_group_size)
        digest = hashlib.sha256(buf.getvalue()).hexdigest()[:16]
        path = data / f"train-{i:05d}-of-{n_shards:05d}-{digest}.parquet"
        path.write_bytes(buf.getvalue())
        paths.append(path)
    return paths
