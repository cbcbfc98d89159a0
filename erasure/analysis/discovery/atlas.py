"""The erasure atlas as a file (data/discovery_atlas.npz): the median PR(c, w) of every later component c onto
every writer w, ranked, written by the activations stage and drawn by the discovery_figs stage (numpy only)."""
from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from erasure.errors import DataError
from erasure.schemas import ACTIVATIONS_REMEDY, check_atlas_arrays


@dataclass
class Atlas:
    writers: list[str]  # every writer: relevant ones by score, then the excluded ones (marked " *")
    components: list[str]  # every component, in all_components order
    matrix: np.ndarray  # (writers, components) median PR(c, w); NaN where c does not read w
    n_layers: int
    n_heads: int


def write_atlas(atlas: Atlas, path: str | Path) -> None:
    """The atlas into `path` as it stands (the stage writes it into its output's temp: erasure.io.OutputSet)."""
    with open(path, "wb") as f:
        np.savez(f, writers=np.array(atlas.writers), components=np.array(atlas.components), matrix=atlas.matrix,
                 shape=np.array([atlas.n_layers, atlas.n_heads]))


def load_atlas(path: str | Path) -> Atlas:
    """The atlas file, checked (erasure.schemas.check_atlas_arrays), or a DataError naming it and its fault."""
    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(f"{path} is a single .npy array, not the atlas's .npz: {ACTIVATIONS_REMEDY}")
        with loaded as f:
            arrays = {key: f[key] for key in f.files}
    except FileNotFoundError:
        raise DataError(f"{path} not found: run `dvc repro activations` first") from None
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        why = str(err).splitlines()[0] if str(err) else "truncated"
        raise DataError(f"{path} is unreadable ({type(err).__name__}: {why}): {ACTIVATIONS_REMEDY}") from None
    check_atlas_arrays(arrays, path)
    n_layers, n_heads = (int(v) for v in arrays["shape"])
    return Atlas(arrays["writers"].tolist(), arrays["components"].tolist(), arrays["matrix"], n_layers, n_heads)
