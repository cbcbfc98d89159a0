"""Collect the sweep: each model's newest DVC experiment's discovery results into sweep/<model>.json.

    python -m scripts.collect_sweep            # experiments of the current commit (dvc exp show --json)
    python -m scripts.collect_sweep -A         # of every commit (dvc exp show --json -A)
    python -m scripts.collect_sweep --audit    # only add each model's newest DLA audit (metrics/dla_audit.json)
                                               # to its sweep/<model>.json, the discovery results left as they are
    python -m scripts.collect_sweep --audit-from DIR   # the same from a checkout DIR where `python -m
                                               # stages.dla_audit` ran (its commit recorded; no DVC experiment)

Then `dvc repro compare` (or `dvc repro`) writes metrics/comparison.json, figures/comparison.png and the paper's
"Beyond gelu-4l" section from them. Experiments pulled from a team's git remote (`dvc exp pull`) count as well.
"""
import argparse
import json
import subprocess
import sys

from erasure.errors import DataError
from erasure.params.load import Params
from erasure.paths import SWEEP_DIR
from erasure.stage import run_stage
from scripts.dvc_exp import exp_show


def main(params: Params) -> None:
    from erasure.analysis.comparison import audit_at, collect_experiments, discovery_at
    from erasure.io import atomic_write_json

    parser = argparse.ArgumentParser(description="Copy each model's newest experiment results into sweep/.")
    parser.add_argument("-A", "--all-commits", action="store_true", help="experiments of every commit, not only HEAD")
    parser.add_argument("--audit", action="store_true",
                        help="only set the `audit` of each existing sweep/<model>.json from its newest experiment")
    parser.add_argument("--audit-from", metavar="DIR",
                        help="only set the `audit` of sweep/<its model>.json from DIR/metrics/dla_audit.json")
    args = parser.parse_args()
    if args.audit_from:
        audit_from_checkout(args.audit_from)
        return
    models = params.compare.models
    collected, notes = collect_experiments(exp_show(args.all_commits))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for model in models:
        if model not in collected:
            print(f"{model}: no finished experiment found (sweep/{model}.json left as it is)", file=sys.stderr)
            continue
        record = collected[model]
        audit = audit_at(record, git_show)
        if args.audit:
            path = SWEEP_DIR / f"{model}.json"
            if audit is None or not path.exists():
                print(f"{model}: no audit in experiment {record['experiment']} or no {path} (left as it is)",
                      file=sys.stderr)
                continue
            kept = json.loads(path.read_text(encoding="utf-8"))
            atomic_write_json(path, kept | {"audit": audit})
            print(f"{model}: audit from experiment {record['experiment']} ({record['rev'][:7]})", file=sys.stderr)
            continue
        record["discovery"] = discovery_at(record, git_show)
        record["audit"] = audit
        atomic_write_json(SWEEP_DIR / f"{model}.json", record)
        print(f"{model}: experiment {record['experiment']} ({record['rev'][:7]})", file=sys.stderr)


def audit_from_checkout(folder: str) -> None:
    """sweep/<model>.json's `audit` := FOLDER/metrics/dla_audit.json, with FOLDER's git commit (and whether its
    code had uncommitted changes) as its source; the rest of the record is left as it is."""
    from pathlib import Path

    from erasure.io import atomic_write_json, read_json

    audit = read_json(Path(folder) / "metrics/dla_audit.json", "run `python -m stages.dla_audit` there first")
    path = SWEEP_DIR / f"{audit['model']}.json"
    if not path.exists():
        raise DataError(f"{path} does not exist: collect the model's discovery first")
    git = ["git", "-C", folder]
    rev = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or None
    dirty = bool(subprocess.run(git + ["status", "--porcelain", "--", "erasure", "stages"], capture_output=True,
                                text=True).stdout.strip())
    kept = json.loads(path.read_text(encoding="utf-8"))
    atomic_write_json(path, kept | {"audit": {"experiment": None, "rev": rev, "code_dirty": dirty,
                                              "source": "python -m stages.dla_audit in a checkout", **audit}})
    print(f"{audit['model']}: audit from {folder} ({(rev or '?')[:7]})", file=sys.stderr)


def git_show(rev: str, path: str) -> str:
    """A file as committed in `rev` (DVC keeps each experiment as a git commit under refs/exps)."""
    run = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    if run.returncode != 0:
        raise DataError(f"`git show {rev[:7]}:{path}` failed: {run.stderr.strip() or 'no message'}")
    return run.stdout

if __name__ == "__main__":
    run_stage(main)
