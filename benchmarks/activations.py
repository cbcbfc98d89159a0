"""Time and peak memory of the activation stage at paper scale (300 x 1024 tokens) on this machine.

    python -m benchmarks.activations [--model planted-4l] [--n-text 240] [--n-code 60] [--seq-len 1024]

Runs the same code as `stages/activations.py` (prompts built from params.yaml with the overrides given) into a
temporary directory and appends the measurement to benchmarks/results.jsonl.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import torch

from erasure.analysis.activations import compute_activation_tables
from erasure.analysis.prompts import build_prompts
from erasure.models.load import bos_token_id, load_model
from erasure.params.load import load_params, resolve_roles, validate_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="planted-4l")
    parser.add_argument("--n-text", type=int, default=240)
    parser.add_argument("--n-code", type=int, default=60)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=None)
    args = parser.parse_args()

    raw = copy.deepcopy(load_params().raw)
    raw["model"] = args.model
    raw["models"][args.model]["prompts"].update(n_text=args.n_text, n_code=args.n_code, seq_len=args.seq_len)
    if args.batch_size:
        raw["activations"]["batch_size"] = args.batch_size
    params = validate_params(raw)
    model = load_model(params)
    tokens, _ = build_prompts(params, model.tokenizer, bos_token_id(params, model))
    act = params.activations
    writer, erasers = resolve_roles(params)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        compute_activation_tables(model, tokens, writer, erasers, Path(tmp), act.batch_size, act.n_dla_prompts)
        seconds = time.perf_counter() - start
        disk_mb = sum(f.stat().st_size for f in Path(tmp).iterdir()) / 2**20
    result = {
        "model": args.model,
        "prompts": list(tokens.shape),
        "batch_size": act.batch_size,
        "seconds": round(seconds, 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "output_mb": round(disk_mb, 1),
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(result))
    with open(Path(__file__).with_name("results.jsonl"), "a") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
