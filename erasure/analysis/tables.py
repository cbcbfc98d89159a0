"""Read the activation stage's per-token tables by name (the figure stages' only input)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from erasure.errors import DataError
from erasure.paths import ACTIVATIONS_DIR


@dataclass
class ActivationTables:
    meta: dict
    resid_pr: np.ndarray  # (n, p, run, checkpoint), memory-mapped
    component_pr: np.ndarray  # (n, p, run, component), memory-mapped

    def resid(self, checkpoint: str, run: str) -> np.ndarray:
        return self.resid_pr[:, :, self.meta["runs"].index(run), self.meta["checkpoints"].index(checkpoint)]

    def component(self, name: str, run: str) -> np.ndarray:
        return self.component_pr[:, :, self.meta["runs"].index(run), self.meta["components"].index(name)]


def load_tables(directory: str | Path = ACTIVATIONS_DIR) -> ActivationTables:
    directory = Path(directory)
    try:
        meta = json.loads((directory / "meta.json").read_text())
        resid = np.load(directory / "resid_pr.npy", mmap_mode="r")
        comps = np.load(directory / "component_pr.npy", mmap_mode="r")
    except FileNotFoundError as err:
        raise DataError(f"{err.filename} not found: run `dvc repro activations` first") from None
    except (ValueError, OSError, json.JSONDecodeError) as err:
        raise DataError(f"{directory} holds a corrupt table ({err}): re-run `dvc repro activations`") from None
    expected = (meta["n_prompts"], meta["seq_len"], len(meta["runs"]))
    if resid.shape != expected + (len(meta["checkpoints"]),) or comps.shape != expected + (len(meta["components"]),):
        raise DataError(f"{directory} tables do not match meta.json: re-run `dvc repro activations`")
    return ActivationTables(meta, resid, comps)
