"""Stage prompts: the prompt set of the selected model, saved once as tokens + sha256 (data/prompts), and which
inputs it came from (metrics/inputs.json: Hub commits and the weights' sha256, so the report says which bytes)."""
from pathlib import Path

from erasure.cli import run_stage
from erasure.config import load_params

OUT = Path("data/prompts")
INPUTS = Path("metrics/inputs.json")


def main() -> None:
    from erasure.io import atomic_path, atomic_write_json
    from erasure.models import LoadedFrom, bos_token_id, load_model
    from erasure.prompts import build_prompts, save_prompts

    params = load_params()
    loaded = LoadedFrom()
    model = load_model(params, loaded)
    tokens, info = build_prompts(params, model.tokenizer, bos_token_id(params, model))
    info["hub"] = {**loaded.repos, **info.pop("datasets")}
    with atomic_path(OUT) as tmp:
        info = save_prompts(tmp, tokens, info)
    atomic_write_json(INPUTS, {"model": params.model, "hub": info["hub"], "prompts_sha256": info["sha256"]})
    print(f"prompts: {tuple(tokens.shape)} ({info['n_text']} text + {info['n_code']} code) for {params.model}")


if __name__ == "__main__":
    run_stage(main, needs_model=True)
