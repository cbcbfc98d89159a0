"""The erasure atlas as a file (data/discovery_atlas.npz): the median PR(c, w) of every later component c onto
every writer w, ranked, written by the activations stage and drawn by the discovery_figs stage (numpy only)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from erasure.errors import DataError


@dataclass
class Atlas:
    writers: list[str]  # every writer: relevant ones by score, then the excluded ones (marked " *")
    components: list[str]  # every component, in all_components order
    matrix: np.ndarray  # (writers, components) median PR(c, w); NaN where c does not read w
    n_layers: int
    n_heads: int


def write_atlas(atlas: Atlas, path: str | Path) -> None:
    """The atlas into `path` as it stands (the stage writes it into its output's temp: erasure.io.staged)."""
    with open(path, "wb") as f:
        np.savez(f, writers=np.array(atlas.writers), components=np.array(atlas.components), matrix=atlas.matrix,
                 shape=np.array([atlas.n_layers, atlas.n_heads]))


def load_atlas(path: str | Path) -> Atlas:
    """The atlas file, or a DataError saying which stage writes it."""
    try:
        with np.load(path, allow_pickle=False) as f:
            n_layers, n_heads = (int(v) for v in f["shape"])
            return Atlas(f["writers"].tolist(), f["components"].tolist(), f["matrix"], n_layers, n_heads)
    except FileNotFoundError:
        raise DataError(f"{path} not found: run `dvc repro activations` first") from None
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"{path} is unreadable ({err}): re-run `dvc repro activations`") from None
