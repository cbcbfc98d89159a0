"""Write tests/fixtures/sampling_2023.json: the rows `datasets==2.14.4` (the authors' 2023 library) yields.

For every configuration below it writes marker shards (`scripts/build_hub_fixtures.write_token_shards`: the token
at `MARKER_POSITION` names the row), serves them as Hub dataset repos through the stand-in Hub
(`tests/hub_standin.py`), and runs the authors' exact call
`load_dataset(repo_id, split="train", streaming=True).shuffle(seed=..., buffer_size=...)`, first n rows, in a
throwaway virtual environment with the 2023 library versions (created in a temporary directory, removed
afterwards). The fixture holds each configuration, the marker ids in the order they came, and the library
versions. Our own sampler (`erasure/analysis/authors_sampling.py`) is never called here: the test compares it
with this file.

The same call is then run with the installed (today's) `datasets` and compared, printed only (not stored: it
changes with the installed version).

Usage: `python scripts/sampling_2023_fixture.py [--out tests/fixtures/sampling_2023.json]` (needs PyPI; about 70 s
on 2 cores: 20-35 s pip, 5 s the 2023 run, 40 s today's library).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from erasure.io import atomic_write_text  # noqa: E402
from scripts.build_hub_fixtures import GELU4L_DATASETS, TOKENIZER_VOCAB, ShardSpec, build_dataset  # noqa: E402
from tests.hub_standin import serve  # noqa: E402

DEFAULT_OUT = ROOT / "tests" / "fixtures" / "sampling_2023.json"
LIBRARY_2023 = [  # datasets 2.14.4 (Aug 2023) with dependency versions that install and work with it on Python 3.11
    "datasets==2.14.4",
    "pyarrow==14.0.2",
    "huggingface_hub==0.17.3",
    "numpy==1.26.4",
    "pandas==2.1.4",
    "fsspec==2023.6.0",
]
CALL = 'load_dataset(repo_id, split="train", streaming=True).shuffle(seed=seed, buffer_size=buffer_size), first n rows'
MARKER_POSITION = 1  # write_token_shards puts each row's marker id right after BOS

# Run in the venv (and with today's library): the authors' call on each repo; prints the markers and versions.
DRIVER = """
import itertools, json, sys
import datasets, fsspec, huggingface_hub, numpy, pyarrow
from datasets import load_dataset
datasets.disable_progress_bar()
jobs = json.load(sys.stdin)
markers = []
for job in jobs:
    stream = load_dataset(job["repo_id"], split="train", streaming=True)
    stream = stream.shuffle(seed=job["seed"], buffer_size=job["buffer_size"])
    markers.append([row["tokens"][job["marker_position"]] for row in itertools.islice(stream, job["n"])])
versions = {module.__name__: module.__version__ for module in (datasets, pyarrow, huggingface_hub, numpy, fsspec)}
json.dump({"markers": markers, "versions": {"python": sys.version.split()[0], **versions}}, sys.stdout)
"""

def _spec(n_shards: int, rows_per_shard: int, seed: int, marker_base: int) -> ShardSpec:
    return ShardSpec(n_shards, rows_per_shard, seed=seed, marker_base=marker_base, vocab_size=TOKENIZER_VOCAB,
                     row_group_size=16)


TEXT_REPO, CODE_REPO = "NeelNanda/c4-tokenized-2b", "NeelNanda/code-tokenized"
CONFIGURATIONS = [  # (name, repo id, shards, seed, buffer_size, n, what it checks)
    ("text", TEXT_REPO, GELU4L_DATASETS[TEXT_REPO], 5235, 10, 24, "the end-to-end test's text set (stand-in defaults)"),
    ("code", CODE_REPO, GELU4L_DATASETS[CODE_REPO], 5235, 10, 6, "the end-to-end test's code set (stand-in defaults)"),
    ("cross-shards", "sampling/cross-shards", _spec(4, 15, 3, 12_000), 5235, 10, 30,
     "n + buffer_size = 40 rows span three of the four shards"),
    ("whole-stream", "sampling/whole-stream", _spec(4, 300, 4, 100), 5235, 10, 1300,
     "n > all 1200 rows: over 1000 slot draws (a second batch), then the end-of-stream flush"),
    ("buffer-100", "sampling/buffer-100", _spec(6, 30, 5, 13_000), 42, 100, 150,
     "another seed; the buffer spans several shards"),
    ("buffer-exceeds-stream", "sampling/buffer-exceeds-stream", _spec(2, 20, 6, 13_500), 7, 100, 40,
     "fewer rows than the buffer: no slot draws, only the flush"),
    ("c4-like", "sampling/c4-like", _spec(23, 12, 7, 14_000), 5235, 10, 240,
     "23 shards like NeelNanda/c4-tokenized-2b, the authors' 240 text rows cross 21 of them"),
]


def configurations() -> list[dict]:
    """The shard sets and shuffle calls as stored in the fixture (the shard spec is write_token_shards' kwargs)."""
    return [
        {"name": name, "repo_id": repo_id, "checks": checks, "shards": asdict(spec), "seed": seed,
         "buffer_size": buffer_size, "n": n}
        for name, repo_id, spec, seed, buffer_size, n, checks in CONFIGURATIONS
    ]


def run_driver(python: str, jobs: list[dict], env: dict) -> dict:
    result = subprocess.run(
        [python, "-c", DRIVER], input=json.dumps(jobs), capture_output=True, text=True, env=env, check=False
    )
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        raise SystemExit(f"error: the authors' call failed under {python} (its stderr is above)")
    return json.loads(result.stdout)


def make_venv(folder: Path) -> str:
    """A fresh venv holding the 2023 library set; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    python = str(folder / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *LIBRARY_2023]
    if subprocess.run(pip, check=False).returncode != 0:
        raise SystemExit(f"error: pip could not install {' '.join(LIBRARY_2023)} (PyPI needed; see above)")
    return python


def write_fixture(out: Path, configs: list[dict], run: dict) -> None:
    if run["versions"]["datasets"] != LIBRARY_2023[0].split("==")[1]:
        raise SystemExit(f"error: the venv ran datasets {run['versions']['datasets']}, not {LIBRARY_2023[0]}")
    fixture = {
        "generated_by": "scripts/sampling_2023_fixture.py",
        "call": CALL,
        "marker_position": MARKER_POSITION,
        "library_versions": run["versions"],
        "configurations": [config | {"markers": markers} for config, markers in zip(configs, run["markers"])],
    }
    # each list of ids on one line, so the file stays short to read
    text = re.sub(r"\[[\d,\s]*\]", lambda m: json.dumps(json.loads(m.group())), json.dumps(fixture, indent=1))
    atomic_write_text(out, text + "\n")


def print_comparison(configs: list[dict], run_2023: dict, run_today: dict) -> None:
    print(f"rows of datasets {run_2023['versions']['datasets']} vs today's {run_today['versions']['datasets']}:")
    for config, rows_2023, rows_today in zip(configs, run_2023["markers"], run_today["markers"]):
        same = sum(a == b for a, b in zip(rows_2023, rows_today))
        common = len(set(rows_2023) & set(rows_today))
        print(f"  {config['name']}: {len(rows_2023)} rows; same row at the same position {same}, "
              f"rows in common {common}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixture to write (JSON)")
    args = parser.parse_args()
    if args.out.suffix != ".json" or args.out.is_dir():
        parser.exit(2, f"error: --out must be a .json file path, got {args.out}\n")
    configs = configurations()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sampling-2023-") as tmp:
        tmp = Path(tmp)
        python = make_venv(tmp / "venv")
        print(f"venv with {' '.join(LIBRARY_2023)}: {time.monotonic() - start:.0f} s")
        hub = tmp / "hub"
        for config in configs:
            folder = hub / "datasets" / config["repo_id"]
            build_dataset(folder, config["repo_id"], ShardSpec(**config["shards"]))
            config["shard_files"] = sorted(path.name for path in (folder / "data").glob("*.parquet"))
        jobs = [
            {key: config[key] for key in ("repo_id", "seed", "buffer_size", "n")} | {"marker_position": MARKER_POSITION}
            for config in configs
        ]
        with serve(hub) as url:
            offline = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
            env = {key: value for key, value in os.environ.items() if key not in offline}
            env |= {"HF_ENDPOINT": url, "HF_HUB_DISABLE_TELEMETRY": "1"}
            venv_env = {key: value for key, value in env.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
            run_2023 = run_driver(python, jobs, venv_env | {"HF_HOME": str(tmp / "hf-2023")})
            write_fixture(args.out, configs, run_2023)
            print(f"wrote {args.out}: {time.monotonic() - start:.0f} s in all")
            run_today = run_driver(sys.executable, jobs, env | {"HF_HOME": str(tmp / "hf-today")})
    print_comparison(configs, run_2023, run_today)


if __name__ == "__main__":
    main()
