"""Stage prompts: the prompt set of the selected model, saved once as tokens + sha256 (data/prompts)."""
from pathlib import Path

from erasure.cli import run_stage
from erasure.config import load_params

OUT = Path("data/prompts")


def main() -> None:
    from erasure.io import atomic_path
    from erasure.models import bos_token_id, load_model
    from erasure.prompts import build_prompts, save_prompts

    params = load_params()
    model = load_model(params)
    tokens, info = build_prompts(params, model.tokenizer, bos_token_id(params, model))
    with atomic_path(OUT) as tmp:
        save_prompts(tmp, tokens, info)
    print(f"prompts: {tuple(tokens.shape)} ({info['n_text']} text + {info['n_code']} code) for {params.model}")


if __name__ == "__main__":
    run_stage(main, needs_model=True)
