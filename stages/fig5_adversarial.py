"""Stage fig5_adversarial: paper Fig 5 drawn -- clean DLA of the writer and of other heads on four adversarial
prompts vs their DLA when the head's last-position input is resampled (metrics/fig5_adversarial.json, computed by
the activations stage), and its plot data."""
from erasure.io import OutputSet
from erasure.params.load import Params
from erasure.paths import FIGURES, METRICS, PLOTS
from erasure.plotting.data import fig5_rows
from erasure.plotting.fig5 import plot_fig5
from erasure.schemas import Fig5Record, read_metrics
from erasure.stage import run_stage


def main(params: Params) -> None:
    prompts = read_metrics(METRICS["fig5_adversarial"], Fig5Record, params.model).model_dump()["prompts"]
    with OutputSet() as out:  # replaced together: a fault in one leaves the previous set
        out.csv(PLOTS["fig5"], fig5_rows(prompts), params.outputs.significant_digits)
        out.file(FIGURES["fig5"], lambda tmp: plot_fig5(prompts, tmp, params.model, params.fig5.dpi))
    for key, res in prompts.items():
        cells = ", ".join(
            f"{name} {h['clean']:.2f} -> {h['resampled']['median']:.2f}" for name, h in res["heads"].items()
        )
        print(f"fig5 {key}: top2 {res['top2']} diff {res['logit_diff']:.2f}; {cells} (n = {res['n_resample']})")


if __name__ == "__main__":
    run_stage(main)
