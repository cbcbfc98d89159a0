"""Collect the sweep: each model's newest DVC experiment's discovery results into sweep/<model>.json.

    python -m scripts.collect_sweep            # experiments of the current commit (dvc exp show --json)
    python -m scripts.collect_sweep -A         # of every commit (dvc exp show --json -A)

Then `dvc repro compare` (or `dvc repro`) writes metrics/comparison.json, figures/comparison.png and the paper's
"Beyond gelu-4l" section from them. Experiments pulled from a team's git remote (`dvc exp pull`) count as well.
"""
import argparse
import json
import subprocess
import sys

from erasure.errors import DataError
from erasure.paths import SWEEP_DIR
from erasure.stage import run_stage


def main() -> None:
    from erasure.analysis.comparison import collect_experiments
    from erasure.io import atomic_write_json
    from erasure.params.load import load_params

    parser = argparse.ArgumentParser(description="Copy each model's newest experiment results into sweep/.")
    parser.add_argument("-A", "--all-commits", action="store_true", help="experiments of every commit, not only HEAD")
    args = parser.parse_args()
    models = load_params().compare.models
    cmd = ["dvc", "exp", "show", "--json"] + (["-A"] if args.all_commits else [])
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no message"])[-1]
        raise DataError(f"`{' '.join(cmd)}` failed: {last}")
    try:
        show = json.loads(run.stdout)
    except json.JSONDecodeError as err:
        raise DataError(f"`{' '.join(cmd)}` did not print JSON ({err})") from None
    collected, notes = collect_experiments(show)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for model in models:
        if model in collected:
            atomic_write_json(SWEEP_DIR / f"{model}.json", collected[model])
            print(f"{model}: experiment {collected[model]['experiment']} ({collected[model]['rev'][:7]})",
                  file=sys.stderr)
        else:
            print(f"{model}: no experiment found (kept sweep/{model}.json if there is one)", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
