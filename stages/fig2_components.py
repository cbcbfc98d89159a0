"""Stage fig2_components: paper Fig 2, PR of every component onto the writer, and the erasers' summed PR."""
from erasure.params.load import Params
from erasure.paths import FIGURES, METRICS, PLOTS
from erasure.stage import run_stage


def main(params: Params) -> None:
    from erasure.analysis.figs123 import fig2_metrics
    from erasure.analysis.tables import load_tables
    from erasure.io import OutputSet, round_significant
    from erasure.plotting.data import fig2_rows
    from erasure.plotting.figs123 import fig2

    cfg, digits = params.fig2, params.outputs.significant_digits
    metrics = round_significant(fig2_metrics(load_tables(), cfg.negative_median, params.stats), digits)
    with OutputSet() as out:  # replaced together: a fault in one leaves the previous set
        out.json(METRICS["fig2_components"], metrics)
        out.csv(PLOTS["fig2"], fig2_rows(metrics, params.stats.headline, cfg.layers), digits)
        out.file(FIGURES["fig2"], lambda tmp: fig2(metrics, params.stats.headline, cfg.bands, cfg.layers, tmp, cfg.dpi))


if __name__ == "__main__":
    run_stage(main)
