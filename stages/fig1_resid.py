"""Stage fig1_resid: paper Fig 1, PR(resid_k, writer) at every checkpoint, clean vs V-composition patched."""
from erasure.params.load import load_params
from erasure.paths import FIGURES, METRICS, PLOTS
from erasure.stage import run_stage


def main() -> None:
    from erasure.analysis.figs123 import fig1_metrics
    from erasure.analysis.tables import load_tables
    from erasure.io import atomic_write_csv, atomic_write_json, round_significant
    from erasure.plotting.data import fig1_rows
    from erasure.plotting.figs123 import fig1

    params = load_params()
    cfg, digits = params.fig1, params.outputs.significant_digits
    metrics = round_significant(fig1_metrics(load_tables(), params.stats), digits)
    fig1(metrics, params.stats.headline, cfg.bands, FIGURES["fig1"], cfg.dpi)
    atomic_write_csv(PLOTS["fig1"], fig1_rows(metrics, params.stats.headline), digits)
    atomic_write_json(METRICS["fig1_resid"], metrics)


if __name__ == "__main__":
    run_stage(main)
