"""Stage discover: rank every component as a writer by how much of its output later components erase, pick the
top writer's erasers and test their V-composition dependence (metrics/discovery.json, two figures)."""
import resource
import sys
import time
from pathlib import Path

from erasure.cli import run_stage
from erasure.config import DataError, load_params
from erasure.io import atomic_path, atomic_write_json

METRICS = Path("metrics/discovery.json")
ATLAS = Path("figures/erasure_atlas.png")
PERSISTENCE = Path("figures/persistence.png")


def main() -> None:
    from erasure.discovery import DiscoveryParams, discover, plot_atlas, plot_persistence
    from erasure.models import load_model
    from erasure.prompts import load_prompt_info, load_prompts

    t0 = time.perf_counter()
    params = load_params()
    dp = DiscoveryParams.from_dict(params.section("discovery"))
    cfg = params.model_cfg
    # never params.writer here: `auto` would read the metrics file this stage writes
    named = cfg["writer"] != "auto"
    info = load_prompt_info()
    if info["model"] != params.model:
        raise DataError(f"data/prompts was built for {info['model']}, not {params.model}: run `dvc repro prompts`")
    tokens = load_prompts()
    model = load_model(params)
    result, figures = discover(
        model, tokens, dp, model_name=params.model,
        params_writer=cfg["writer"] if named else None,
        params_erasers=list(cfg["erasers"]) if named else None,
    )
    result["prompts_sha256"] = info["sha256"]
    tag = f"{params.model}, {result['n_prompts']} prompts x {result['seq_len']} tokens"
    with atomic_path(ATLAS) as tmp:
        plot_atlas(figures, tmp, dp.atlas_rows,
                   title=f"Erasure atlas ({tag})\nmedian PR(c, w) of each later component c onto writer w")
    with atomic_path(PERSISTENCE) as tmp:
        plot_persistence(figures, tmp,
                         title=f"Persistence of the top writers ({tag})\n"
                               "dotted: token means removed (V-comp prompt subset)")
    atomic_write_json(METRICS, result)
    sel = result["selected"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"discover: {tag}: top writer {result['writers'][0]['name'] if result['writers'] else None}, selected "
        f"{sel['writer']} with erasers {sel['erasers']}; rediscovered = {result['rediscovered']}; "
        f"scan {figures['timing_s']['scan']:.0f} s, V-comp {figures['timing_s']['vcomp']:.0f} s, "
        f"total {time.perf_counter() - t0:.0f} s, peak RSS {peak:.0f} MB",
        file=sys.stderr,
    )


if __name__ == "__main__":
    run_stage(main, needs_model=True)
