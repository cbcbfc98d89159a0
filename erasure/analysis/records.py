"""What the figure stages read of the activations stage's metrics files, typed where they enter (the strict
readers of erasure.params.fields): discovery's record for its figures, Fig 5's for its plot. No torch."""
from __future__ import annotations

from pathlib import Path

from erasure.errors import DataError
from erasure.params.fields import MAX_COUNT, Int, Record, Text, read_record

REMEDY = "re-run `dvc repro activations`"


class DiscoveryFigsRecord(Record):
    """metrics/discovery.json as the discovery_figs stage reads it."""

    model: Text
    n_prompts: Int(1, MAX_COUNT)
    seq_len: Int(2, 10_000_000)
    writers: list[dict]
    ranking: list[dict]


class Fig5Record(Record):
    """metrics/fig5_adversarial.json as the fig5_adversarial stage reads it."""

    model: Text
    prompts: dict[str, dict]


def read_metrics(path: Path, cls: type[Record], model: str) -> Record:
    """The record at `path`, checked as `cls` and as written for `model` (a DataError otherwise)."""
    remedy = REMEDY if path.exists() else "run `dvc repro activations` first"
    record = read_record(path, cls, remedy)
    if record.model != model:
        raise DataError(f"{path} is of model {record.model!r}, not {model!r}: run `dvc repro activations`")
    return record
