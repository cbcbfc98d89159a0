"""Stage fig2_components: paper Fig 2, PR of every component onto the writer, and the erasers' summed PR."""
from erasure import plotting
from erasure.cli import run_stage
from erasure.config import load_params, require_choice, require_float
from erasure.figparams import plot_params
from erasure.figures import fig2_metrics
from erasure.io import atomic_write_json
from erasure.tables import load_tables


def main() -> None:
    cfg = plot_params(load_params(), "fig2")
    require_choice(cfg.get("layers"), "fig2.layers", ["all", "after_writer"])
    threshold = require_float(cfg.get("negative_median"), "fig2.negative_median", 0.0, 1.0)
    metrics = fig2_metrics(load_tables(), threshold)
    plotting.fig2(metrics, cfg["pool"], cfg["bands"], cfg["layers"], "figures/fig2_components.png", cfg["dpi"])
    atomic_write_json("metrics/fig2_components.json", metrics)


if __name__ == "__main__":
    run_stage(main)
