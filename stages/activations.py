"""Stage activations: clean + V-composition-patched runs, streamed into per-token tables (data/activations)."""
from erasure.params.load import load_params, resolve_roles
from erasure.paths import ACTIVATIONS_DIR
from erasure.stage import run_stage


def main() -> None:
    from erasure.analysis.prompt_files import load_prompts

    params = load_params()
    writer, erasers = resolve_roles(params)
    tokens, info = load_prompts(params)  # checked before TransformerLens is imported: a bad file stops it in seconds
    from erasure.analysis.activations import compute_activation_tables
    from erasure.io import atomic_path
    from erasure.models.load import load_model

    model = load_model(params)
    with atomic_path(ACTIVATIONS_DIR) as tmp:
        meta = compute_activation_tables(
            model, tokens, writer, erasers, tmp, params.activations.batch_size, params.activations.n_dla_prompts,
            extra_meta={"model": params.model, "prompts_sha256": info.sha256, "is_code": info.is_code},
        )
    print(f"activations: {meta['n_prompts']} x {meta['seq_len']} tokens, writer {writer}, patched layers "
          f"{meta['patch_layers']}")


if __name__ == "__main__":
    run_stage(main, needs_model=True)
