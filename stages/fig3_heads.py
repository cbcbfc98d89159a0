"""Stage fig3_heads: paper Fig 3, each head of the patched layer onto the writer, clean vs patched."""
from erasure.params.load import Params
from erasure.paths import FIGURES, METRICS, PLOTS
from erasure.stage import run_stage


def main(params: Params) -> None:
    from erasure.analysis.figs123 import fig3_metrics
    from erasure.analysis.tables import load_tables
    from erasure.io import OutputSet, round_significant
    from erasure.plotting.data import FIG3_FIELDS, fig3_rows
    from erasure.plotting.figs123 import fig3

    cfg, digits = params.fig3, params.outputs.significant_digits
    metrics = round_significant(fig3_metrics(load_tables(), params.stats), digits)
    with OutputSet() as out:  # replaced together: a fault in one leaves the previous set
        out.json(METRICS["fig3_heads"], metrics)
        out.csv(PLOTS["fig3"], fig3_rows(metrics, params.stats.headline), digits, FIG3_FIELDS)
        out.file(FIGURES["fig3"], lambda tmp: fig3(metrics, params.stats.headline, cfg.bands, tmp, cfg.dpi))


if __name__ == "__main__":
    run_stage(main)
