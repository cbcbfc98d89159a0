"""The committed outputs tell the truth on a fresh clone: dvc.lock and metrics/ are a run of the committed
params.yaml with `model` set to the offline model the lock records (planted-4l; the default stays gelu-4l), read
from git HEAD, not from the workspace, which an applied experiment may have changed."""
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from erasure.paths import DVC_LOCK, DVC_YAML, METRIC_FILES, PARAMS_FILE
from erasure.verification.metrics import MISSING, lookup

ROOT = Path(__file__).resolve().parents[2]


def _committed(path) -> str:
    result = subprocess.run(["git", "show", f"HEAD:{path}"], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"no committed {path} (not a git checkout)")
    return result.stdout


def test_the_committed_outputs_are_a_run_of_the_committed_params():
    params = yaml.safe_load(_committed(PARAMS_FILE))
    lock = yaml.safe_load(_committed(DVC_LOCK))
    assert params["model"] == "gelu-4l"  # `dvc repro` is the paper's model
    stages = yaml.safe_load(_committed(DVC_YAML))["stages"]
    assert set(lock["stages"]) == set(stages)  # no entry of a removed stage, every stage run
    run_models = {entry["params"][str(PARAMS_FILE)]["model"] for entry in lock["stages"].values()
                  if "model" in (entry.get("params") or {}).get(str(PARAMS_FILE), {})}
    assert run_models == {"planted-4l"}, run_models
    params["model"] = "planted-4l"
    for stage, entry in lock["stages"].items():
        for key, value in (entry.get("params") or {}).get(str(PARAMS_FILE), {}).items():
            assert lookup(params, key) is not MISSING and lookup(params, key) == value, (stage, key)
    for file in METRIC_FILES:
        assert json.loads(_committed(file))["model"] == params["model"], file
