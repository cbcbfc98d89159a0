"""Stage discovery_figs: discovery's figures from its cached results -- the erasure atlas (data/discovery_atlas.npz)
and the persistence curves of the top writers (metrics/discovery.json) -- and the writers' plot data."""
from erasure.analysis.discovery.atlas import load_atlas
from erasure.io import OutputSet
from erasure.params.load import Params
from erasure.paths import DISCOVERY_ATLAS, FIGURES, METRICS, PLOTS
from erasure.plotting.data import writer_rows
from erasure.plotting.discovery import plot_atlas, plot_persistence
from erasure.schemas import DiscoveryFigsRecord, read_metrics
from erasure.stage import run_stage


def main(params: Params) -> None:
    dp = params.discovery
    record = read_metrics(METRICS["discovery"], DiscoveryFigsRecord, params.model).model_dump()
    atlas = load_atlas(DISCOVERY_ATLAS)
    tag = f"{params.model}, {record['n_prompts']} prompts x {record['seq_len']} tokens"
    with OutputSet() as out:  # replaced together: a fault in one leaves the previous set
        out.csv(PLOTS["writers"], writer_rows(record["ranking"]), params.outputs.significant_digits)
        out.file(FIGURES["atlas"], lambda tmp: plot_atlas(
            atlas, tmp, dp.atlas_rows, dp.dpi,
            title=f"Erasure atlas ({tag})\nmedian PR(c, w) of each later component c onto writer w"))
        out.file(FIGURES["persistence"], lambda tmp: plot_persistence(
            record, atlas.n_layers, tmp, dp.dpi,
            title=f"Persistence of the top writers ({tag})\ndotted: token means removed (V-comp prompt subset)"))


if __name__ == "__main__":
    run_stage(main)
