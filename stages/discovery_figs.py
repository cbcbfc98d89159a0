"""Stage discovery_figs: discovery's figures from its cached results -- the erasure atlas (data/discovery_atlas.npz)
and the persistence curves of the top writers (metrics/discovery.json) -- and the writers' plot data."""
from erasure.analysis.discovery.atlas import load_atlas
from erasure.analysis.records import DiscoveryFigsRecord, read_metrics
from erasure.io import atomic_write_csv
from erasure.params.load import load_params
from erasure.paths import DISCOVERY_ATLAS, FIGURES, METRICS, PLOTS
from erasure.plotting.data import writer_rows
from erasure.plotting.discovery import plot_atlas, plot_persistence
from erasure.stage import run_stage


def main() -> None:
    params = load_params()
    dp = params.discovery
    record = read_metrics(METRICS["discovery"], DiscoveryFigsRecord, params.model).model_dump()
    atlas = load_atlas(DISCOVERY_ATLAS)
    tag = f"{params.model}, {record['n_prompts']} prompts x {record['seq_len']} tokens"
    plot_atlas(atlas, FIGURES["atlas"], dp.atlas_rows, dp.dpi,
               title=f"Erasure atlas ({tag})\nmedian PR(c, w) of each later component c onto writer w")
    plot_persistence(record, atlas.n_layers, FIGURES["persistence"], dp.dpi,
                     title=f"Persistence of the top writers ({tag})\n"
                           "dotted: token means removed (V-comp prompt subset)")
    atomic_write_csv(PLOTS["writers"], writer_rows(record["ranking"]), params.outputs.significant_digits)


if __name__ == "__main__":
    run_stage(main)
