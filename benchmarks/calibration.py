"""Calibration of the claims' 95% intervals on planted-4l: do they cover what a large prompt set measures?

    python -m benchmarks.calibration [--sets 20] [--set-size 32] [--seq-len 128]

Builds one offline prompt set of sets x set-size prompts (80% text, 20% code, shuffled as the pipeline does), runs
the activation pass on it once, and splits it into `--sets` disjoint small sets. Each small set goes through the
stages' own metric code (Figs 1-3 metrics, the Fig 4 line fits) with its intervals; the value measured on all the
OTHER sets together (19 x 32 = 608 prompts, disjoint from the small set) stands in for the truth. Prints, per claim
kind (medians, sums over the erasers, shares, fit parameters) and per quantity, how many small-set intervals cover
that value (nominal 95%: 19 of 20), and the mean interval width against the spread of the small-set values (3.92 x
their sd: near 1 for a well-calibrated 95% interval). Appends the result to benchmarks/results.jsonl.
"""
from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from erasure.analysis.activations import TablePass, write_meta
from erasure.analysis.clean_pass import clean_pass
from erasure.analysis.fig4 import load_points
from erasure.analysis.figs123 import fig1_metrics, fig2_metrics, fig3_metrics
from erasure.analysis.prompts import build_prompts
from erasure.analysis.roles import Roles, resolve_roles
from erasure.analysis.tables import ActivationTables
from erasure.mechanism.bootstrap import PromptBootstrap
from erasure.mechanism.linefit import bootstrap_fit, fit_line
from erasure.mechanism.names import all_components, checkpoint_names
from erasure.models.load import bos_token_id, load_model
from erasure.params.load import load_params, validate_params
from erasure.schemas import ActivationMeta

MODEL = "planted-4l"


def quantities(eraser: str) -> dict[str, list[tuple[str, str]]]:
    """Per claim kind, (metric file, dotted key) of every calibrated value: the claims' and planted checks' keys.

    One eraser stands for all: planted-4l's erasers write scaled copies of one signal, so their medians are covered
    or missed together (six copies would only repeat one count)."""
    ckpt = lambda c, run: ("fig1", f"checkpoints.{c}.{run}.all.median")  # noqa: E731
    return {
        "medians": [ckpt(c, "clean") for c in ("resid_mid0", "resid_post0", "resid_mid1", "resid_post1", "resid_mid2")]
        + [ckpt("resid_mid2", "patched"), ckpt("resid_post3", "patched"), ("fig2", f"components.{eraser}.all.median"),
           ("fig3", f"heads.{eraser}.patched.all.median"), ("fig3", f"heads.{eraser}.clean.all.q75")],
        "sums": [("fig2", f"eraser_sum.all.{s}") for s in ("q25", "median", "q75")]
        + [("fig2", "erasure_total_pct.all")],
        "shares": [("fig1", "vcomp_share.all"), ("fig1", "vcomp_share.no_bos")],
        "fit parameters": [("fig4", f"paper.{k}") for k in ("r", "slope", "intercept")] + [("fig4", "full_erasers.r")],
    }


def run_tables(model, tokens: torch.Tensor, writer, erasers, params) -> tuple[np.ndarray, ...]:
    """The activation pass over every prompt (the stage's TablePass, every prompt a Fig 4 prompt): resid and
    component PR tables, and Fig 4's DLA points (writer, V-composition part, whole erasers)."""
    n, p = tokens.shape
    with tempfile.TemporaryDirectory() as tmp:
        tables = TablePass(model, Roles(writer, erasers), n, p, Path(tmp), n, params.fig4)
        clean_pass(model, tokens, params.activations.batch_size, [tables], desc="activations")
        write_meta(tmp, tables.finish(model.tokenizer) | {"model": MODEL})
        points, _ = load_points(tmp)
        resid, comps = (np.load(Path(tmp) / name) for name in ("resid_pr.npy", "component_pr.npy"))
    return resid, comps, points["writer"], points["vcomp"], points["erasers"]


def set_metrics(rows: np.ndarray, data: tuple[np.ndarray, ...], meta: dict, params, stats) -> dict:
    """The stages' metrics (with intervals drawn as `stats` says) of the prompts `rows`."""
    resid, comps, x, y, y_full = (a[rows] for a in data)
    tables = ActivationTables(ActivationMeta.model_validate({**meta, "n_prompts": len(rows)}), resid, comps)
    boot = PromptBootstrap.of(len(rows), stats)
    fig4 = {"paper": {**fit_line(x, y), **bootstrap_fit(x, y, boot)},
            "full_erasers": {**fit_line(x, y_full), **bootstrap_fit(x, y_full, boot)}}
    return {"fig1": fig1_metrics(tables, stats), "fig2": fig2_metrics(tables, params.fig2.negative_median, stats),
            "fig3": fig3_metrics(tables, stats), "fig4": fig4}


def lookup(metrics: dict, file: str, key: str) -> float:
    node = metrics[file]
    for part in key.split("."):
        node = node[part]
    return float(node)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=20)
    parser.add_argument("--set-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    args = parser.parse_args()
    n_total = args.sets * args.set_size
    raw = copy.deepcopy(load_params().raw)
    raw["model"] = MODEL
    n_text = round(0.8 * n_total)
    raw["models"][MODEL]["prompts"].update(n_text=n_text, n_code=n_total - n_text, seq_len=args.seq_len)
    params = validate_params(raw)
    start = time.perf_counter()
    model = load_model(params)
    tokens, _ = build_prompts(params, model.tokenizer, bos_token_id(params, model.tokenizer))
    writer, erasers = resolve_roles(params)
    data = run_tables(model, tokens, writer, erasers, params)
    meta = {"model": MODEL, "writer": writer.name, "erasers": [e.name for e in erasers], "seq_len": args.seq_len,
            "runs": ["clean", "patched"], "checkpoints": checkpoint_names(model.cfg.n_layers),
            "components": [c.name for c in all_components(model.cfg.n_layers, model.cfg.n_heads)],
            "patch_layers": sorted({e.layer for e in erasers})}
    sets = np.arange(n_total).reshape(args.sets, args.set_size)
    small = [set_metrics(rows, data, meta, params, params.stats) for rows in sets]
    # the truth for set s: every other set (only its values are used, so few draws)
    few = params.stats.model_copy(update={"n_bootstrap": 20})
    rest = [set_metrics(np.delete(sets, s, axis=0).ravel(), data, meta, params, few) for s in range(args.sets)]
    kinds: dict = {}
    for kind, keys in quantities(meta["erasers"][0]).items():
        rows = []
        for file, key in keys:
            truth = np.array([lookup(m, file, key) for m in rest])
            values = np.array([lookup(m, file, key) for m in small])
            lows = np.array([lookup(m, file, key + "_low") for m in small])
            highs = np.array([lookup(m, file, key + "_high") for m in small])
            spread = 2 * 1.959964 * values.std(ddof=1)
            rows.append({"key": f"{file}:{key}", "covered": int(((lows <= truth) & (truth <= highs)).sum()),
                         "truth_mean": round(float(truth.mean()), 5),
                         "width_over_spread": round(float((highs - lows).mean() / spread), 2) if spread > 0 else None})
        kinds[kind] = {"covered": sum(r["covered"] for r in rows), "intervals": args.sets * len(rows),
                       "quantities": rows}
    result = {"benchmark": "calibration", "model": MODEL, "sets": args.sets, "set_size": args.set_size,
              "truth": "the other sets", "seq_len": args.seq_len, "n_bootstrap": params.stats.n_bootstrap,
              "level": params.stats.level, "kinds": kinds, "seconds": round(time.perf_counter() - start),
              "date": time.strftime("%Y-%m-%d")}
    for kind, k in kinds.items():
        print(f"{kind}: {k['covered']} of {k['intervals']} intervals cover the other sets' value "
              f"({100 * k['covered'] / k['intervals']:.1f}%)")
        for r in k["quantities"]:
            print(f"  {r['covered']:2d}/{args.sets}  width/spread {r['width_over_spread']}  {r['key']}")
    with open(Path(__file__).with_name("results.jsonl"), "a") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
