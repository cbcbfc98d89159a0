"""Time the prompt-bootstrap intervals add to the figure stages, on existing activation tables.

    python -m benchmarks.intervals [--act-dir data/activations]

For every series the Fig 1-3 stages summarize (each checkpoint and run, each component, the eraser sum, each head
of the patched layers), times `summarize_pools` and `summarize_pools_with_intervals`, i.e. without and with the
bootstrap (stats.n_bootstrap draws); then Fig 4's
two line-fit bootstraps on (fig4.n_prompts, seq_len) points and Fig 5's 12 resampled-row bootstraps (4 prompts x 3
heads x fig5.n_resample rows), whose cost depends only on those shapes. Prints one JSON line and appends it to
benchmarks/results.jsonl. Times are CPU seconds of this process, with the load average beside them (the machine is
shared: compare with and without in one run).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from erasure.analysis.fig5 import summarize_resampled
from erasure.analysis.figs123 import bootstrap_of
from erasure.analysis.tables import load_tables
from erasure.mechanism.bootstrap import PromptBootstrap, summarize_pools_with_intervals
from erasure.mechanism.linefit import bootstrap_fit
from erasure.mechanism.names import Component
from erasure.mechanism.stats import summarize_pools
from erasure.params.load import load_params
from erasure.paths import ACTIVATIONS_DIR


def _series(tables) -> dict[str, list]:
    """The per-token arrays each figure stage summarizes, by stage."""
    meta = tables.meta.model_dump()
    heads = [c for c in meta["components"] if Component.parse(c).is_head
             and Component.parse(c).layer in set(meta["patch_layers"])]
    eraser_sum = sum(tables.component(e, "clean").astype("float64") for e in meta["erasers"])
    return {
        "fig1_resid": [tables.resid(c, r) for c in meta["checkpoints"] for r in meta["runs"]],
        "fig2_components": [tables.component(c, "clean") for c in meta["components"] if c != meta["writer"]]
        + [eraser_sum],
        "fig3_heads": [tables.component(h, r) for h in heads for r in meta["runs"]],
    }


def _timed(fn) -> float:
    """CPU seconds of this process (less sensitive than wall time to the other jobs on a shared machine)."""
    start = time.process_time()
    fn()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--act-dir", type=Path, default=ACTIVATIONS_DIR)
    args = parser.parse_args()
    params = load_params()
    tables = load_tables(args.act_dir)
    boot = bootstrap_of(tables, params.stats)
    stages = {}
    for stage, arrays in _series(tables).items():
        arrays = [np.asarray(a) for a in arrays]  # read from disk once, outside the timing
        plain = sum(_timed(lambda a=a: summarize_pools(a)) for a in arrays)
        with_boot = sum(_timed(lambda a=a: summarize_pools_with_intervals(a, boot)) for a in arrays)
        stages[stage] = {"series": len(arrays), "cpu_seconds_plain": round(plain, 2),
                         "cpu_seconds_with": round(with_boot, 2), "added": round(with_boot - plain, 2)}
    rng = np.random.default_rng(0)
    n4 = min(params.fig4.n_prompts, tables.meta.n_prompts)
    x = rng.normal(size=(n4, tables.meta.seq_len))
    fit_boot = PromptBootstrap.of(n4, params.stats)
    stages["fig4_dla"] = {"added": round(2 * _timed(lambda: bootstrap_fit(x, -0.8 * x, fit_boot)), 3)}
    rows = rng.normal(size=params.fig5.n_resample)
    n5 = 3 * len(params.fig5.prompts)
    stages["fig5_adversarial"] = {"added": round(n5 * _timed(lambda: summarize_resampled(rows, params.stats)), 3)}
    result = {
        "benchmark": "intervals",
        "model": tables.meta.model,
        "prompts": [tables.meta.n_prompts, tables.meta.seq_len],
        "n_bootstrap": params.stats.n_bootstrap,
        "stages": stages,
        "added_cpu_seconds": round(sum(s["added"] for s in stages.values()), 1),
        "load_avg_1min": round(os.getloadavg()[0], 1),
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(result))
    with open(Path(__file__).with_name("results.jsonl"), "a") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
