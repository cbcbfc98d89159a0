"""The DLA audit against its own floor, measured in the same process: time, ratio and peak memory.

    python -m benchmarks.audit [--n-prompts N]    # in a checkout whose data/prompts and metrics/discovery.json exist

The floor (docs/methods.md §9): one forward per component over the audit's prompts from the component's layer on,
without hooks and without the unembedding, batched as the audit batches them (a layer's heads and MLP as
n_heads + 1 copies of `activations.batch_size` prompts) from the clean residual at that layer (captured beforehand,
not timed). Timed: floor, the whole audit (`erasure.analysis.audit.run_audit`, clean passes and hooks included),
floor again; the ratio is the audit over the mean of the two floors, so load from other work weighs on both alike.
The model of params.yaml, its prompts, the load averages before and after; appended to benchmarks/results.jsonl.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

from benchmarks.machine import machine_record

RESULTS = Path(__file__).with_name("results.jsonl")


def floor_seconds(model, tokens, batch_size: int) -> float:
    """One bare forward per component from its layer on, batched as the audit batches them."""
    import torch

    from erasure.mechanism.hooks import resid_pre_hook, run_capture

    n_layers, copies = model.cfg.n_layers, model.cfg.n_heads + 1
    seconds = 0.0
    with torch.inference_mode():
        for start in range(0, tokens.shape[0], batch_size):
            batch = tokens[start : start + batch_size].to(model.cfg.device)
            resid = run_capture(model, batch, {resid_pre_hook(i) for i in range(n_layers)})
            for layer in range(n_layers):
                x = resid[resid_pre_hook(layer)].repeat(copies, 1, 1)
                t0 = time.perf_counter()
                model(x, start_at_layer=layer, return_type=None)
                seconds += time.perf_counter() - t0
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-prompts", type=int, default=None, help="default: audit.n_prompts of params.yaml")
    args = parser.parse_args()


    from erasure.analysis.audit import keep_freed_memory, run_audit
    from erasure.analysis.audit_pool import AuditConfig
    from erasure.analysis.prompt_files import load_prompts
    from erasure.analysis.roles import resolve_roles
    from erasure.models.load import load_model
    from erasure.params.load import load_params
    from stages.dla_audit import eraser_sets

    params = load_params()
    tokens, _ = load_prompts(params)
    n = min(tokens.shape[0], args.n_prompts or params.audit.n_prompts or tokens.shape[0])
    tokens = tokens[:n]
    writer, erasers = resolve_roles(params)
    sets = eraser_sets(params, writer, erasers)
    keep_freed_memory()  # before the model and the floor: floor and audit under the same allocator settings
    model = load_model(params)
    cfg = AuditConfig.of(params)
    load_before = os.getloadavg()
    floor1 = floor_seconds(model, tokens, cfg.batch_size)
    t0 = time.perf_counter()
    result = run_audit(model, tokens, cfg, sets)
    audit = time.perf_counter() - t0
    floor2 = floor_seconds(model, tokens, cfg.batch_size)
    load_after = os.getloadavg()
    row = {
        "benchmark": "audit",
        "model": params.model,
        "prompts": [n, int(tokens.shape[1])],
        "ablation": cfg.ablation,
        "components": len(result.tokens),
        "floor_s": [round(floor1, 1), round(floor2, 1)],
        "audit_s": round(audit, 1),
        "audit_parts_s": {k: round(v, 1) for k, v in result.seconds.items()},
        "ratio": round(audit / ((floor1 + floor2) / 2), 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        **machine_record(load_before, load_after),
    }
    print(json.dumps(row), flush=True)
    with open(RESULTS, "a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
