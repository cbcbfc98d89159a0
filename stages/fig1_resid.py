"""Stage fig1_resid: paper Fig 1, PR(resid_k, writer) at every checkpoint, clean vs V-composition patched."""
from erasure.params.load import Params
from erasure.paths import FIGURES, METRICS, PLOTS
from erasure.stage import run_stage


def main(params: Params) -> None:
    from erasure.analysis.figs123 import fig1_metrics
    from erasure.analysis.tables import load_tables
    from erasure.io import OutputSet, round_significant
    from erasure.plotting.data import fig1_rows
    from erasure.plotting.figs123 import fig1

    cfg, digits = params.fig1, params.outputs.significant_digits
    metrics = round_significant(fig1_metrics(load_tables(), params.stats), digits)
    with OutputSet() as out:  # replaced together: a fault in one leaves the previous set
        out.json(METRICS["fig1_resid"], metrics)
        out.csv(PLOTS["fig1"], fig1_rows(metrics, params.stats.headline), digits)
        out.file(FIGURES["fig1"], lambda tmp: fig1(metrics, params.stats.headline, cfg.bands, tmp, cfg.dpi))


if __name__ == "__main__":
    run_stage(main)
