"""Stage fig5_adversarial: paper Fig 5 -- clean DLA of the writer and of other heads on four adversarial prompts,
vs their DLA when the head's last-position input is resampled from unrelated prompts."""
from erasure.params.load import load_params, resolve_roles
from erasure.paths import FIGURES, METRICS, PLOTS, PROMPTS_DIR
from erasure.stage import run_stage


def main() -> None:
    import torch

    from erasure.analysis.fig5 import analyse_prompt, prompt_specs, strip_values
    from erasure.analysis.prompt_files import load_prompts
    from erasure.io import atomic_write_csv, atomic_write_json, round_significant
    from erasure.models.load import bos_token_id, load_model
    from erasure.plotting.data import fig5_rows
    from erasure.plotting.fig5 import plot_fig5

    params = load_params()
    settings, digits = params.fig5, params.outputs.significant_digits
    writer, _ = resolve_roles(params)
    specs = prompt_specs(settings, writer, params.model)
    rows = load_prompts(PROMPTS_DIR)
    model = load_model(params)
    bos = bos_token_id(params, model)
    torch.manual_seed(settings.seed)
    prompts = {spec.key: strip_values(analyse_prompt(model, spec, writer, rows, settings, bos)) for spec in specs}
    metrics = round_significant({"model": params.model, "prompts": prompts}, digits)
    prompts = metrics["prompts"]
    plot_fig5(prompts, FIGURES["fig5"], params.model, settings.dpi)
    atomic_write_csv(PLOTS["fig5"], fig5_rows(prompts), digits)
    atomic_write_json(METRICS["fig5_adversarial"], metrics)
    for key, res in prompts.items():
        cells = ", ".join(
            f"{name} {h['clean']:.2f} -> {h['resampled']['median']:.2f}" for name, h in res["heads"].items()
        )
        print(f"fig5 {key}: top2 {res['top2']} diff {res['logit_diff']:.2f}; {cells} (n = {res['n_resample']})")


if __name__ == "__main__":
    run_stage(main, needs_model=True)
