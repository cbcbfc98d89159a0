"""Read the activation stage's per-token tables by name (the figure stages' only input), checked where they enter:
meta.json typed, every table of the shape and dtype meta.json states, and every value finite (a NaN or inf would
otherwise drop out of the statistics without a word)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from erasure.errors import DataError
from erasure.paths import ACTIVATIONS_DIR
from erasure.schemas import RUNS, ActivationMeta, read_record

REMEDY = "re-run `dvc repro activations`"
CHUNK_ROWS = 64  # prompts checked for finiteness at once (bounds the memory of the check)


@dataclass
class ActivationTables:
    meta: ActivationMeta
    resid_pr: np.ndarray  # (n, p, run, checkpoint), memory-mapped
    component_pr: np.ndarray  # (n, p, run, component), memory-mapped

    def resid(self, checkpoint: str, run: str) -> np.ndarray:
        return self.resid_pr[:, :, self.meta.runs.index(run), self.meta.checkpoints.index(checkpoint)]

    def component(self, name: str, run: str) -> np.ndarray:
        return self.component_pr[:, :, self.meta.runs.index(run), self.meta.components.index(name)]


def check_finite(array: np.ndarray, path: Path, items: list[str]) -> None:
    """DataError naming the first NaN/inf of a (prompt, position, run, item) table and how many there are."""
    bad_total, first = 0, None
    for start in range(0, array.shape[0], CHUNK_ROWS):
        bad = ~np.isfinite(array[start : start + CHUNK_ROWS])
        count = int(bad.sum())
        if count and first is None:
            first = np.argwhere(bad)[0] + np.array([start, 0, 0, 0])
        bad_total += count
    if bad_total:
        prompt, pos, run, item = (int(i) for i in first)
        raise DataError(f"{path} holds {bad_total} NaN/inf values (first: prompt {prompt}, position {pos}, "
                        f"{RUNS[run]} {items[item]} = {array[prompt, pos, run, item]}); the tables must be "
                        f"finite: {REMEDY}")


def _table(path: Path, shape: tuple) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise DataError(f"{path} not found: run `dvc repro activations` first") from None
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path} is corrupt ({type(err).__name__}): {REMEDY}") from None
    if not isinstance(array, np.ndarray):  # an .npz archive under the .npy name
        array.close()
        raise DataError(f"{path} is an .npz archive, not one .npy array: it is corrupt; {REMEDY}")
    if array.dtype != np.float32 or array.shape != shape:
        raise DataError(f"{path} is {array.dtype} {array.shape}, but meta.json says float32 {shape}: {REMEDY}")
    return array


def load_meta(directory: str | Path = ACTIVATIONS_DIR) -> ActivationMeta:
    path = Path(directory) / "meta.json"
    return read_record(path, ActivationMeta, REMEDY if path.exists() else "run `dvc repro activations` first")


def load_tables(directory: str | Path = ACTIVATIONS_DIR) -> ActivationTables:
    directory = Path(directory)
    meta = load_meta(directory)
    rows = (meta.n_prompts, meta.seq_len, len(meta.runs))
    resid = _table(directory / "resid_pr.npy", rows + (len(meta.checkpoints),))
    comps = _table(directory / "component_pr.npy", rows + (len(meta.components),))
    check_finite(resid, directory / "resid_pr.npy", meta.checkpoints)
    check_finite(comps, directory / "component_pr.npy", meta.components)
    return ActivationTables(meta, resid, comps)
