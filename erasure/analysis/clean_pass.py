"""The clean forward pass, run once per batch for everyone who reads it.

Discovery's scan, the activation tables and discovery's V-composition subset all read the same clean run of a
batch: each names the hooks it needs (`names_for(start)`), the batch runs once capturing their union, and each
reads what it named (`add(start, batch, store)`). Hooks only read, so every consumer sees the numbers it would
see in a pass of its own.
"""
from __future__ import annotations

import time
from typing import Protocol

import torch
from jaxtyping import Int
from transformer_lens import HookedTransformer

from erasure.mechanism.hooks import run_capture
from erasure.progress import progress


class Consumer(Protocol):
    def names_for(self, start: int) -> set[str]: ...

    def add(self, start: int, batch: torch.Tensor, store: dict[str, torch.Tensor]) -> None: ...


def clean_pass(
    model: HookedTransformer, tokens: Int[torch.Tensor, "n p"], batch_size: int, consumers: list[Consumer],
    desc: str,
) -> dict[str, float]:
    """Every batch of `tokens` through the model once; returns the seconds spent in the forward passes and in
    each consumer (by class name)."""
    seconds = {"forward": 0.0} | {type(c).__name__: 0.0 for c in consumers}
    device = model.cfg.device
    for start in progress(range(0, tokens.shape[0], batch_size), desc=desc, unit="batch"):
        batch = tokens[start : start + batch_size].to(device)
        names = set().union(*(c.names_for(start) for c in consumers))
        t0 = time.perf_counter()
        store = run_capture(model, batch, names)
        seconds["forward"] += time.perf_counter() - t0
        for c in consumers:
            t0 = time.perf_counter()
            c.add(start, batch, store)
            seconds[type(c).__name__] += time.perf_counter() - t0
        del store
    return seconds
