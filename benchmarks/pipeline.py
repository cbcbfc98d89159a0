"""The whole pipeline against its floor, measured in the same run: time, ratio and peak memory.

    python -m benchmarks.pipeline [--model planted-4l] [--scale 32x1024] [--scale 300x1024] [--body-floor]

For each scale (prompts x tokens; the text/code split of params.yaml's model entry, scaled): a scratch copy of
this checkout (its files, not its run outputs) with the model and prompt set set in params.yaml; the prompt set
built once (`dvc repro prompts`, not timed); then, each as a process of its own, timed wall-clock with its peak
resident memory (the largest process of its tree): the floor (benchmarks/floor.py: imports, model load, one
forward pass with logits over the prompt set), the whole `dvc repro -f`, and the floor again. The ratio is the
pipeline's time over the mean of the two floors, so a machine shared with other work loads both alike; the load
averages before and after are recorded. `--body-floor` also times the floor without the unembedding. The
activations stage's own breakdown (forward passes, tables, discovery, Fig 5) is parsed from its log. Each
scale's result is printed and appended to benchmarks/results.jsonl.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.machine import machine_record

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).with_name("results.jsonl")
RUN_OUTPUTS = ("metrics/", "figures/", "paper/paper.", "paper/verification.", "data/", "dvc.lock")


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in GB of the process tree, stderr) of a command; a failure stops the benchmark."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # ru_maxrss: the largest process of the tree it waited for
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        log = err.read().decode(errors="replace")
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed ({proc.returncode}):\n{log[-3000:]}")
    return seconds, usage.ru_maxrss / 2**20, log


def scratch_copy(dest: Path, model: str, n_prompts: int, seq_len: int) -> None:
    """This checkout's files (not its run outputs) in a fresh git repo, params set to the model and scale."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    for rel in listed:
        if rel.startswith(RUN_OUTPUTS) or not (ROOT / rel).is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["model"] = model
    prompts = params["models"][model]["prompts"]
    n_text = round(n_prompts * prompts["n_text"] / (prompts["n_text"] + prompts["n_code"]))
    prompts.update(n_text=n_text, n_code=n_prompts - n_text, seq_len=seq_len)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    for cmd in (["git", "init", "-q"], git + ["add", "-A"], git + ["commit", "-qm", "benchmark snapshot"]):
        subprocess.run(cmd, cwd=dest, check=True)


def activations_breakdown(log: str) -> dict:
    """The activations stage's `seconds` record (stages/activations.py): forward passes, tables, discovery, Fig 5."""
    match = re.search(r"activations: seconds (\{.*?\}); peak RSS ([\d.]+) GB", log)
    return {**json.loads(match.group(1)), "peak_rss_gb": float(match.group(2))} if match else {}


def bench(model: str, n_prompts: int, seq_len: int, body_floor: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="erasure-bench-") as tmp:
        work = Path(tmp)
        scratch_copy(work, model, n_prompts, seq_len)
        timed(["dvc", "repro", "prompts"], work)
        load_before = os.getloadavg()
        floor1, floor_rss, _ = timed([sys.executable, "-m", "benchmarks.floor"], work)
        body = timed([sys.executable, "-m", "benchmarks.floor", "--body"], work)[0] if body_floor else None
        pipeline, rss, log = timed(["dvc", "repro", "-f"], work)
        floor2, _, _ = timed([sys.executable, "-m", "benchmarks.floor"], work)
        load_after = os.getloadavg()
    floor = (floor1 + floor2) / 2

    return {
        "benchmark": "pipeline",
        "model": model,
        "prompts": [n_prompts, seq_len],
        "floor_s": [round(floor1, 1), round(floor2, 1)],
        "floor_body_s": round(body, 1) if body is not None else None,
        "pipeline_s": round(pipeline, 1),
        "ratio": round(pipeline / floor, 2),
        "ratio_body": round(pipeline / body, 2) if body is not None else None,
        "peak_rss_gb": round(rss, 2),
        "floor_peak_rss_gb": round(floor_rss, 2),
        "activations_s": activations_breakdown(log),
        **machine_record(load_before, load_after),
    }


def scale(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match:
        raise argparse.ArgumentTypeError(f"--scale {text!r} is not allowed: must be PROMPTSxTOKENS, e.g. 32x1024")
    return int(match.group(1)), int(match.group(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="planted-4l")
    parser.add_argument("--scale", type=scale, action="append", help="PROMPTSxTOKENS (repeatable; default 32x1024)")
    parser.add_argument("--body-floor", action="store_true", help="also time the floor without the unembedding")
    args = parser.parse_args()
    for n_prompts, seq_len in args.scale or [(32, 1024)]:
        result = bench(args.model, n_prompts, seq_len, args.body_floor)
        print(json.dumps(result), flush=True)
        with open(RESULTS, "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
