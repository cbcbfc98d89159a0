"""Where the model runs: params `compute.device` as a torch device (torch is imported only when asked)."""
from __future__ import annotations

from erasure.errors import ParamError


def compute_device(setting: str):
    """The torch device of params `compute.device`: auto = CUDA when torch sees one; cuda without one is a
    ParamError (one line), never a silent fallback to the CPU."""
    import torch

    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
    elif setting == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise ParamError(f"compute.device = 'cuda' is not allowed on this machine: torch {torch.__version__} "
                         f"({build}) sees no CUDA device; use auto or cpu")
    return torch.device(setting)
