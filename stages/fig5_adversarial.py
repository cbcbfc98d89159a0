"""Stage fig5_adversarial: paper Fig 5 -- clean DLA of the writer and of other heads on four adversarial prompts,
vs their DLA when the head's last-position input is resampled from unrelated prompts."""
from pathlib import Path


from erasure.cli import run_stage
from erasure.config import load_params
from erasure.io import atomic_path, atomic_write_json

METRICS, FIGURE = Path("metrics/fig5_adversarial.json"), Path("figures/fig5_adversarial.png")


def main() -> None:
    import torch
    from erasure.models import bos_token_id, load_model
    from erasure.prompts import load_prompts
    from erasure.resample import analyse_prompt, fig5_settings, plot_fig5, strip_values

    params = load_params()
    settings = fig5_settings(params)
    writer = params.writer
    rows = load_prompts("data/prompts")
    model = load_model(params)
    bos = bos_token_id(params, model)
    torch.manual_seed(settings.seed)
    prompts = {
        spec.key: strip_values(analyse_prompt(model, spec, writer, rows, settings, bos)) for spec in settings.prompts
    }
    metrics = {"model": params.model, "prompts": prompts}
    with atomic_path(FIGURE) as tmp:
        plot_fig5(prompts, tmp, params.model)
    atomic_write_json(METRICS, metrics)
    for key, res in prompts.items():
        cells = ", ".join(
            f"{name} {h['clean']:.2f} -> {h['resampled']['median']:.2f}" for name, h in res["heads"].items()
        )
        print(f"fig5 {key}: top2 {res['top2']} diff {res['logit_diff']:.2f}; {cells} (n = {res['n_resample']})")


if __name__ == "__main__":
    run_stage(main, needs_model=True)
