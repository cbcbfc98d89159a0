"""Stage fig1_resid: paper Fig 1, PR(resid_k, writer) at every checkpoint, clean vs V-composition patched."""
from erasure import plotting
from erasure.cli import run_stage
from erasure.config import load_params
from erasure.figparams import plot_params
from erasure.figures import fig1_metrics
from erasure.io import atomic_write_json
from erasure.tables import load_tables


def main() -> None:
    cfg = plot_params(load_params(), "fig1")
    metrics = fig1_metrics(load_tables())
    plotting.fig1(metrics, cfg["pool"], cfg["bands"], "figures/fig1_resid.png", cfg["dpi"])
    atomic_write_json("metrics/fig1_resid.json", metrics)


if __name__ == "__main__":
    run_stage(main)
