"""Stage fig2_components: paper Fig 2, PR of every component onto the writer, and the erasers' summed PR."""
from erasure.params.load import load_params
from erasure.paths import FIGURES, METRICS, PLOTS
from erasure.stage import run_stage


def main() -> None:
    from erasure.analysis.figs123 import fig2_metrics
    from erasure.analysis.tables import load_tables
    from erasure.io import atomic_write_csv, atomic_write_json, round_significant
    from erasure.plotting.data import fig2_rows
    from erasure.plotting.figs123 import fig2

    params = load_params()
    cfg, digits = params.fig2, params.outputs.significant_digits
    metrics = round_significant(fig2_metrics(load_tables(), cfg.negative_median, params.stats), digits)
    fig2(metrics, params.stats.headline, cfg.bands, cfg.layers, FIGURES["fig2"], cfg.dpi)
    atomic_write_csv(PLOTS["fig2"], fig2_rows(metrics, params.stats.headline, cfg.layers), digits)
    atomic_write_json(METRICS["fig2_components"], metrics)


if __name__ == "__main__":
    run_stage(main)
