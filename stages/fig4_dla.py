"""Stage fig4_dla: paper Fig 4 -- DLA of the writer vs DLA of the erasers' V-composition part (metrics + scatter),
and the tokens the writer's output aligns with (paper §3.5)."""
from dataclasses import replace

from erasure.params.load import load_params, resolve_roles
from erasure.paths import ACTIVATIONS_DIR, FIGURES, METRICS, PLOTS
from erasure.stage import run_stage


def main() -> None:
    from erasure.analysis.fig4 import aligned_tokens, check_cache, fig4_metrics, load_dla_cache
    from erasure.io import atomic_write_csv, atomic_write_json, round_significant
    from erasure.models.load import load_model
    from erasure.plotting.data import aligned_token_rows, fig4_rows, scatter_sample
    from erasure.plotting.fig4 import plot_fig4

    params = load_params()
    settings, digits = params.fig4, params.outputs.significant_digits
    writer, erasers = resolve_roles(params)
    cache, meta = load_dla_cache(ACTIVATIONS_DIR)
    check_cache(cache, meta, params.model, writer, erasers)
    model = load_model(params)  # for W_U, the erasers' W_V W_O (code variant) and the tokenizer only
    result = fig4_metrics(cache, model, settings, params.model, writer, erasers)
    result = replace(result, metrics=round_significant(result.metrics, digits))
    aligned = round_significant({
        "model": params.model,
        "writer": writer.name,
        "top": aligned_tokens(cache["writer_over_scale_mean"], model.W_U.detach().float(), model.tokenizer,
                              settings.aligned_top_k),
    }, digits)
    plot_fig4(result, FIGURES["fig4"], settings.max_scatter_points, settings.seed, writer.name, settings.dpi)
    drawn = scatter_sample(result.x, result.y, settings.max_scatter_points, settings.seed)
    atomic_write_csv(PLOTS["fig4"], fig4_rows(*drawn), digits)
    atomic_write_csv(PLOTS["aligned_tokens"], aligned_token_rows(aligned["top"]), digits)
    atomic_write_json(METRICS["fig4_dla"], result.metrics)
    atomic_write_json(METRICS["aligned_tokens"], aligned)
    m, c = result.metrics["paper"], result.metrics["code_variant"]
    print(f"fig4: r = {m['r']:.3f} {m['r_ci95']}, slope = {m['slope']:.3f} {m['slope_ci95']}, intercept = "
          f"{m['intercept']:.3f} ({m['n_points']} points, {m['n_prompts']} prompts, positions {m['positions']}); "
          f"full erasers r = {result.metrics['full_erasers']['r']:.3f}; code variant slope = {c['slope']:.3f}, "
          f"r = {c['r']:.3f}; top aligned tokens: {[t['token'] for t in aligned['top'][:5]]}")


if __name__ == "__main__":
    run_stage(main, needs_model=True)
