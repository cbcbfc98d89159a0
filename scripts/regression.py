"""Regression check: did any metric that a claim reads move since a reference run?

    python -m scripts.regression                   # against git revision main (its committed metrics files)
    python -m scripts.regression --rev HEAD~3      # against another revision (an experiment: `dvc exp branch` it)
    python -m scripts.regression --save-ref DIR    # store the current metrics files as a reference directory
    python -m scripts.regression --ref-dir DIR     # compare against a stored reference directory

A numeric metric fails when |new - old| > abs + rel*|old| (params `paper.regression`, abs 1e-4 and rel 1e-4:
a same-machine float32 rerun reproduces the pooled medians to ~1e-6, so a move beyond 1e-4 is a real change);
strings, booleans and lists (top-2 tokens, eraser sets) must be equal; a metric the reference has and the work
tree lost fails. A revision's values are read with `git show REV:file`.
Exit 0 = no claim metric moved, 1 = some moved, 2 = cannot compare (no metrics, other model, dvc error).
"""
import argparse
import shutil
import sys
from pathlib import Path

from erasure.errors import DataError
from erasure.params.load import Params
from erasure.paths import METRIC_FILES
from erasure.stage import run_stage
from erasure.verification.metrics import Metrics, lookup
from erasure.verification.registry import load_claims
from erasure.verification.regression import git_old_file, regression_report
from erasure.verification.verify import load_truth


def main(params: Params) -> None:
    parser = argparse.ArgumentParser(description="Fail when a metric used by a claim moved since a reference run.")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--rev", default="main", help="git revision to compare against (default main)")
    src.add_argument("--ref-dir", type=Path, help="a reference directory written by --save-ref")
    src.add_argument("--save-ref", type=Path, help="copy the current metrics files into this directory and stop")
    parser.add_argument("--abs", type=float, default=None, help="absolute tolerance (default: paper.regression.abs)")
    parser.add_argument("--rel", type=float, default=None, help="relative tolerance (default: paper.regression.rel)")
    args = parser.parse_args()

    registry = load_claims()
    metrics = Metrics(".")
    present = [f for f in METRIC_FILES if metrics.file(f) is not None]
    if not present:
        raise DataError("no metrics/*.json in the work tree: run `dvc repro` first")
    if args.save_ref:
        for f in present:
            (args.save_ref / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, args.save_ref / f)
        print(f"saved {len(present)} metrics files ({metrics.model_of(present[0])}) to {args.save_ref}")
        return
    reg = params.paper.regression
    abs_tol = args.abs if args.abs is not None else reg.abs
    rel_tol = args.rel if args.rel is not None else reg.rel

    if args.ref_dir:
        if not args.ref_dir.is_dir():
            raise DataError(f"--ref-dir {args.ref_dir} is not a directory (write one with --save-ref)")
        ref = Metrics(args.ref_dir)
        old_file, where = ref.file, str(args.ref_dir)
    else:
        cache, where = {}, f"revision {args.rev}"

        def old_file(f):
            if f not in cache:
                cache[f] = git_old_file(args.rev, f)
            return cache[f]

    for f in present:
        old = old_file(f)
        old_model = old.get("model") if isinstance(old, dict) else None
        if old_model is not None and old_model != metrics.model_of(f):
            raise DataError(f"{f}: the reference ({where}) is from {old_model}, the work tree's from "
                            f"{metrics.model_of(f)}: regression compares runs of the same model")

    def old_value(file, dotted):
        return lookup(old_file(file) or {}, dotted)

    run_model = metrics.model_of(present[0])  # the metrics' own model (params may select another since)
    truth = None
    if run_model == "planted-4l":
        try:
            truth = load_truth()
        except Exception as err:
            print(f"warning: planted_truth() unavailable ({err})", file=sys.stderr)
    report = regression_report(registry, metrics, old_value, abs_tol, rel_tol, truth)
    if report["checked"] == 0:
        raise DataError(f"the reference ({where}) holds none of the claim metrics: commit metrics/ at that "
                        "revision, or save a reference with --save-ref and compare with --ref-dir")
    print(f"regression vs {where} ({run_model}): {report['checked']} claim metrics compared, allowed "
          f"|new - old| <= {abs_tol:g} + {rel_tol:g}*|old|; {len(report['moved'])} moved"
          + (f"; {len(report['new_keys'])} without a reference value" if report["new_keys"] else "")
          + (f"; {len(report['skipped'])} keys not resolvable in this run" if report["skipped"] else ""))
    for line in report["moved"]:
        print(f"MOVED {line}")
    for key in report["new_keys"]:
        print(f"no reference value: {key}")
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    run_stage(main)
