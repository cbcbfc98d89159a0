"""Stage discover: rank every component as a writer by how much of its output later components erase, pick the
top writer's erasers and test their V-composition dependence (metrics/discovery.json, two figures)."""
import resource
import sys
import time

from erasure.params.load import load_params
from erasure.paths import FIGURES, METRICS, PLOTS
from erasure.stage import run_stage


def main() -> None:
    from erasure.analysis.discovery.discover import discover
    from erasure.analysis.prompt_files import load_prompts
    from erasure.io import atomic_write_csv, atomic_write_json, round_significant
    from erasure.models.load import load_model
    from erasure.plotting.data import writer_rows
    from erasure.plotting.discovery import plot_atlas, plot_persistence

    t0 = time.perf_counter()
    params = load_params()
    dp, entry = params.discovery, params.entry
    # named roles are compared with what discovery finds; `auto` ones would be read from the file written here
    named = entry.writer != "auto" and entry.erasers != "auto"
    tokens, info = load_prompts(params)
    model = load_model(params)
    found = discover(
        model, tokens, dp, model_name=params.model,
        params_writer=entry.writer.name if named else None,
        params_erasers=[e.name for e in entry.erasers] if named else None,
    )
    digits = params.outputs.significant_digits
    result = round_significant({**found.record, "prompts_sha256": info.sha256}, digits)
    tag = f"{params.model}, {result['n_prompts']} prompts x {result['seq_len']} tokens"
    plot_atlas(found, FIGURES["atlas"], dp.atlas_rows, dp.dpi,
               title=f"Erasure atlas ({tag})\nmedian PR(c, w) of each later component c onto writer w")
    plot_persistence(found, FIGURES["persistence"], dp.dpi,
                     title=f"Persistence of the top writers ({tag})\n"
                           "dotted: token means removed (V-comp prompt subset)")
    atomic_write_csv(PLOTS["writers"], writer_rows(result["ranking"]), digits)
    atomic_write_json(METRICS["discovery"], result)
    sel = result["selected"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"discover: {tag}: top writer {result['writers'][0]['name'] if result['writers'] else None}, selected "
        f"{sel['writer']} with erasers {sel['erasers']}; rediscovered = {result['rediscovered']}; "
        f"scan {found.timing_s['scan']:.0f} s, bootstrap {found.timing_s['bootstrap']:.0f} s, "
        f"V-comp {found.timing_s['vcomp']:.0f} s, "
        f"total {time.perf_counter() - t0:.0f} s, peak RSS {peak:.0f} MB",
        file=sys.stderr,
    )


if __name__ == "__main__":
    run_stage(main, needs_model=True)
