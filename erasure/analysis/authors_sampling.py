"""The authors' prompt sampling as it ran in September 2023, independent of the installed `datasets`.

The authors drew their prompts with
`load_dataset(repo, split="train", streaming=True).shuffle(seed=..., buffer_size=...)` under `datasets` 2.14;
`datasets` 5.x shuffles a stream differently, so calling today's library gives other rows. This module is that
2023 algorithm in numpy + pyarrow. `tests/analysis/test_authors_sampling.py` checks it row for row
against `datasets==2.14.4` itself (the fixture written by `scripts/sampling_2023_fixture.py`).

What 2.14.4 does for a Hub repo of parquet shards (read in its source):
- Shard list (`data_files.resolve_pattern`, for the default `data/{split}-NNNNN-of-NNNNN*.*` pattern and for a
  card's `configs` patterns alike): the files come from fsspec's `glob`, which returns the matching paths sorted
  as strings. All shards sit in `data/`, so this is `sorted()` of their file names.
- `IterableDataset.shuffle(seed)` makes one `np.random.default_rng(seed)`; every consumer deep-copies it unused, so
  the shard shuffle and the buffer each start from a fresh `default_rng(seed)`.
- Shard order (`ShuffledDataSourcesArrowExamplesIterable.__iter__` -> `utils.sharding._shuffle_gen_kwargs`):
  `rng.shuffle(list(range(n_shards)))`; the shards are then read one after another, each in file order.
- Buffer (`BufferShuffledExamplesIterable.__iter__`): the first `buffer_size` rows fill it; then every new row
  replaces, and yields, the slot `i` drawn from `rng.integers(0, buffer_size, size=1000)` batches taken in turn
  (`_iter_random_indices`); at the end of the stream the same generator shuffles the remaining buffer, which is
  yielded in that order.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np
import pyarrow.parquet as pq

T = TypeVar("T")
R = TypeVar("R")

RANDOM_BATCH = 1000  # slot indices drawn per call of rng.integers, as in datasets 2.14
PARQUET_BATCH_ROWS = 64  # rows decoded at a time: a 1024-token row is 8 KiB, so a batch stays well under 1 MiB


def _slot_draws(rng: np.random.Generator, buffer_size: int) -> Iterator[int]:
    """Buffer slots, drawn lazily in batches: the batching decides the generator state left for the final shuffle."""
    while True:
        yield from rng.integers(0, buffer_size, size=RANDOM_BATCH).tolist()


def shuffled_rows_2023(
    shards: Sequence[T], read_rows: Callable[[T], Iterator[R]], seed: int, buffer_size: int
) -> Iterator[R]:
    """The rows of `shards` in the order `datasets` 2.14 `IterableDataset.shuffle(seed, buffer_size)` yields them.

    `shards` must be in the order 2.14 listed them: for a Hub repo, the `data/train-*` file names sorted as strings
    (`sorted(names)`, e.g. of an `HfApi.list_repo_files` listing). `read_rows(shard)` yields one shard's rows in file
    order (e.g. `iter_parquet_rows`); it is called only when the stream reaches that shard, so a caller that takes
    the first n rows opens just the shards those need (about n + buffer_size rows).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(buffer_size, bool) or not isinstance(buffer_size, (int, np.integer)) or buffer_size < 1:
        raise ValueError(f"buffer_size must be a positive integer, got {buffer_size!r}")
    order = list(range(len(shards)))
    np.random.default_rng(seed).shuffle(order)
    stream = (row for index in order for row in read_rows(shards[index]))
    rng = np.random.default_rng(seed)
    slots = _slot_draws(rng, buffer_size)
    buffer: list[R] = []
    for row in stream:
        if len(buffer) == buffer_size:
            slot = next(slots)
            yield buffer[slot]
            buffer[slot] = row
        else:
            buffer.append(row)
    rng.shuffle(buffer)
    yield from buffer


def iter_parquet_rows(source: str | Path | BinaryIO, column: str = "tokens") -> Iterator[list]:
    """One column of a parquet file, row by row in file order, decoded a small batch at a time (never the whole file).

    `source` is a local path or an open binary file (e.g. from `huggingface_hub.HfFileSystem().open`).
    """
    with pq.ParquetFile(source) as parquet:
        names = parquet.schema_arrow.names
        if column not in names:
            raise ValueError(f"{source}: no column {column!r} (columns: {', '.join(names)})")
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=[column]):
            yield from batch.column(0).to_pylist()
