"""Stage fig3_heads: paper Fig 3, each head of the patched layer onto the writer, clean vs patched."""
from erasure.params.load import load_params
from erasure.paths import FIGURES, METRICS
from erasure.stage import run_stage


def main() -> None:
    from erasure.analysis.figs123 import fig3_metrics
    from erasure.analysis.tables import load_tables
    from erasure.io import atomic_write_json
    from erasure.plotting.figs123 import fig3

    params = load_params()
    cfg = params.fig3
    metrics = fig3_metrics(load_tables(), params.stats)
    fig3(metrics, params.stats.headline, cfg.bands, FIGURES["fig3"], cfg.dpi)
    atomic_write_json(METRICS["fig3_heads"], metrics)


if __name__ == "__main__":
    run_stage(main)
