"""Stage fig4_dla: paper Fig 4 -- DLA of the writer vs DLA of the erasers' V-composition part (metrics + scatter),
and the tokens the writer's output aligns with (paper §3.5); from the activations stage's points, no model."""
from dataclasses import replace

from erasure.analysis.fig4 import check_points, fig4_metrics, load_points, tables_roles
from erasure.io import OutputSet, round_significant
from erasure.params.load import Params
from erasure.paths import ACTIVATIONS_DIR, FIGURES, METRICS, PLOTS
from erasure.plotting.data import FIG4_FIELDS, aligned_token_rows, fig4_rows, scatter_sample
from erasure.plotting.fig4 import plot_fig4
from erasure.plotting.style import fmt, not_applicable
from erasure.stage import run_stage


def main(params: Params) -> None:
    settings, digits = params.fig4, params.outputs.significant_digits
    points, meta = load_points(ACTIVATIONS_DIR)
    writer, erasers = tables_roles(params, meta)
    check_points(points, meta, params.model, writer, erasers, settings)
    result = fig4_metrics(points, meta, settings, params.stats, params.model, writer, erasers)
    result = replace(result, metrics=round_significant(result.metrics, digits))
    top = [t.model_dump() for t in meta.fig4.aligned_tokens]
    aligned = round_significant({"model": params.model, "writer": writer.name, "top": top}, digits)
    drawn = scatter_sample(result.x, result.y, settings.max_scatter_points, settings.seed)
    applies = result.metrics["applicable"]
    title = f"Fig 4: DLA of {writer.name} vs its erasers' V-composition part ({params.model})"
    with OutputSet() as out:  # replaced together: a fault in one leaves the previous set
        out.json(METRICS["fig4_dla"], result.metrics)
        out.json(METRICS["aligned_tokens"], aligned)
        out.csv(PLOTS["fig4"], fig4_rows(*drawn), digits, FIG4_FIELDS)
        out.csv(PLOTS["aligned_tokens"], aligned_token_rows(aligned["top"]), digits)
        out.file(FIGURES["fig4"], lambda tmp: plot_fig4(result, tmp, settings.max_scatter_points, settings.seed,
                                                        writer.name, settings.dpi) if applies
                 else not_applicable(tmp, title, result.metrics["reason"], settings.dpi))
    if not applies:
        print(f"fig4: does not apply: {result.metrics['reason']}; top aligned tokens: "
              f"{[t['token'] for t in aligned['top'][:5]]}")
        return
    m, c = result.metrics["paper"], result.metrics["code_variant"]
    print(f"fig4: r = {fmt(m['r'], '.3f')} [{fmt(m['r_low'], '.3f')}, {fmt(m['r_high'], '.3f')}], slope = "
          f"{fmt(m['slope'], '.3f')} [{fmt(m['slope_low'], '.3f')}, {fmt(m['slope_high'], '.3f')}], intercept = "
          f"{fmt(m['intercept'], '.3f')} ({m['n_points']} points, {m['n_prompts']} prompts, positions "
          f"{m['positions']}); full erasers r = {fmt(result.metrics['full_erasers']['r'], '.3f')}; "
          f"code variant slope = {c['slope']}, "
          f"r = {c['r']}; top aligned tokens: {[t['token'] for t in aligned['top'][:5]]}")


if __name__ == "__main__":
    run_stage(main)
