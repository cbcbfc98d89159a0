"""Stage prompts: the prompt set of the selected model, saved once as tokens + sha256 (data/prompts)."""
from erasure.params.load import load_params
from erasure.paths import PROMPTS_DIR
from erasure.stage import run_stage


def main() -> None:
    from erasure.analysis.prompts import build_prompts, save_prompts
    from erasure.io import atomic_path
    from erasure.models.load import bos_token_id, load_model

    params = load_params()
    model = load_model(params)
    tokens, info = build_prompts(params, model.tokenizer, bos_token_id(params, model))
    with atomic_path(PROMPTS_DIR) as tmp:
        save_prompts(tmp, tokens, info)
    print(f"prompts: {tuple(tokens.shape)} ({info['n_text']} text + {info['n_code']} code) for {params.model}")


if __name__ == "__main__":
    run_stage(main, needs_model=True)
