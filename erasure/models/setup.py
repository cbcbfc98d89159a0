"""What a stage that loads a model settles before any work: for a Hub model, online or offline (before any Hugging
Face library is imported: they read their settings at import), and the device (`cuda` without one, or float16 on a
CPU, is one line before the model is read). Only the model stages import this module, so the stages that never load
a model do not depend on the model code (their dvc.yaml deps, written by scripts/stage_deps.py)."""
from __future__ import annotations

from erasure.params.load import Params


def prepare_model_stage(params: Params) -> None:
    if params.entry.loader == "hub":
        from erasure.models.hub import prepare_hub

        prepare_hub(params.entry.hub_timeout_s)
    from erasure.models.device import compute_device

    compute_device(params.compute.device, params.compute.dtype)
