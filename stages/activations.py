"""Stage activations: clean + V-composition-patched runs, streamed into per-token tables (data/activations)."""
from pathlib import Path

from erasure.cli import run_stage
from erasure.config import DataError, load_params

OUT = Path("data/activations")


def main() -> None:
    from erasure.activations import compute_activation_tables
    from erasure.io import atomic_path
    from erasure.models import load_model
    from erasure.prompts import load_prompt_info, load_prompts

    params = load_params()
    writer, erasers = params.writer, params.erasers
    info = load_prompt_info()
    if info.get("model") != params.model:
        raise DataError(f"data/prompts was built for {info.get('model')}, not {params.model}: run `dvc repro prompts`")
    tokens = load_prompts()
    model = load_model(params)
    act = params.section("activations")
    with atomic_path(OUT) as tmp:
        meta = compute_activation_tables(
            model, tokens, writer, erasers, tmp, act["batch_size"], act["n_dla_prompts"],
            extra_meta={"model": params.model, "prompts_sha256": info["sha256"], "is_code": info["is_code"]},
        )
    print(f"activations: {meta['n_prompts']} x {meta['seq_len']} tokens, writer {writer}, patched layers "
          f"{meta['patch_layers']}")


if __name__ == "__main__":
    run_stage(main, needs_model=True)
