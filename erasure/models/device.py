"""Where the model runs: params `compute.device` as a torch device (torch is imported only when asked)."""
from __future__ import annotations

from erasure.errors import ParamError

# float16 matmuls on the CPU are emulated: a planted-4l forward of 4 x 256 tokens took 56 s in float16 against
# 3.2 s in float32 (bfloat16: 2.1 s), torch 2 on this project's 2-core test machine (load ~7): refused, not slow.
CPU_FLOAT16_SLOWDOWN = 17


def compute_device(setting: str, dtype: str = "float32"):
    """The torch device of params `compute.device`: auto = CUDA when torch sees one; cuda without one is a
    ParamError (one line), never a silent fallback to the CPU. `compute.dtype: float16` on the CPU is a
    ParamError too (about CPU_FLOAT16_SLOWDOWN times slower than float32; bfloat16 is not slower)."""
    import torch

    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
    elif setting == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise ParamError(f"compute.device = 'cuda' is not allowed on this machine: torch {torch.__version__} "
                         f"({build}) sees no CUDA device; use auto or cpu")
    if setting == "cpu" and dtype == "float16":
        raise ParamError(f"compute.dtype = 'float16' is not allowed on the CPU: it runs about "
                         f"{CPU_FLOAT16_SLOWDOWN}x slower than float32 there (emulated half-precision matmuls); "
                         "use float32 or bfloat16, or compute.device = cuda")
    return torch.device(setting)
