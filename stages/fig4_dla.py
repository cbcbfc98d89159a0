"""Stage fig4_dla: paper Fig 4 -- DLA of the writer vs DLA of the erasers' V-composition part (metrics + scatter),
and the tokens the writer's output aligns with (paper §3.5)."""
from pathlib import Path

from erasure.cli import run_stage
from erasure.config import load_params
from erasure.io import atomic_path, atomic_write_json

ACTIVATIONS = Path("data/activations")
METRICS, ALIGNED, FIGURE = Path("metrics/fig4_dla.json"), Path("metrics/aligned_tokens.json"), Path("figures/fig4_dla.png")


def main() -> None:
    from erasure.dla import aligned_tokens, check_cache, fig4_metrics, fig4_settings, load_dla_cache, plot_fig4
    from erasure.models import load_model

    params = load_params()
    settings = fig4_settings(params)
    cache, meta = load_dla_cache(ACTIVATIONS)
    check_cache(cache, meta, params)
    model = load_model(params)  # for W_U, the erasers' W_V W_O (code variant) and the tokenizer only
    result = fig4_metrics(cache, model, params, settings)
    aligned = {
        "model": params.model,
        "writer": params.writer.name,
        "top": aligned_tokens(cache["writer_over_scale_mean"], model.W_U.detach().float(), model.tokenizer,
                              settings.aligned_top_k),
    }
    with atomic_path(FIGURE) as tmp:
        plot_fig4(result, tmp, settings.max_scatter_points, settings.seed, params.writer.name)
    atomic_write_json(METRICS, result.metrics)
    atomic_write_json(ALIGNED, aligned)
    m, c = result.metrics["paper"], result.metrics["code_variant"]
    print(f"fig4: r = {m['r']:.3f} {m['r_ci95']}, slope = {m['slope']:.3f} {m['slope_ci95']}, intercept = "
          f"{m['intercept']:.3f} ({m['n_points']} points, {m['n_prompts']} prompts, positions {m['positions']}); "
          f"full erasers r = {result.metrics['full_erasers']['r']:.3f}; code variant slope = {c['slope']:.3f}, "
          f"r = {c['r']:.3f}; top aligned tokens: {[t['token'] for t in aligned['top'][:5]]}")


if __name__ == "__main__":
    run_stage(main, needs_model=True)
