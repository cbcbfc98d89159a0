"""The floor of the pipeline's cost: one bare forward pass over the prompt set, as a process of its own.

    python -m benchmarks.floor [--body]       # in a checkout whose data/prompts is built (`dvc repro prompts`)

Imports, loading the model of params.yaml (on `compute.device`, in `compute.dtype`) and `model(tokens)` over every
prompt in batches of `activations.batch_size`: the least any run of the method costs. `--body` stops before the
unembedding (`return_type=None`): the transformer blocks only, which is all the method needs of most prompts.
benchmarks/pipeline.py times this process against `dvc repro -f`.
"""
from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--body", action="store_true", help="stop before the unembedding (no logits)")
    args = parser.parse_args()

    from erasure.analysis.prompt_files import load_prompts
    from erasure.models.load import load_model
    from erasure.params.load import load_params

    params = load_params()
    tokens, _ = load_prompts(params)
    model = load_model(params)
    batch = params.activations.batch_size
    for start in range(0, tokens.shape[0], batch):
        model(tokens[start : start + batch].to(model.cfg.device), return_type=None if args.body else "logits")


if __name__ == "__main__":
    main()
