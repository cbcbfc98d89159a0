"""Stage fig3_heads: paper Fig 3, each head of the patched layer onto the writer, clean vs patched."""
from erasure import plotting
from erasure.cli import run_stage
from erasure.config import load_params
from erasure.figparams import plot_params
from erasure.figures import fig3_metrics
from erasure.io import atomic_write_json
from erasure.tables import load_tables


def main() -> None:
    cfg = plot_params(load_params(), "fig3")
    metrics = fig3_metrics(load_tables())
    plotting.fig3(metrics, cfg["pool"], cfg["bands"], "figures/fig3_heads.png", cfg["dpi"])
    atomic_write_json("metrics/fig3_heads.json", metrics)


if __name__ == "__main__":
    run_stage(main)
