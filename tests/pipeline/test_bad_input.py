"""A stage given bad params or corrupt inputs: one line naming the parameter or file, exit 2, no output left."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import write_params

REPO = Path(__file__).resolve().parents[2]
CHECKOUT_ENV = {**os.environ, "PYTHONPATH": str(REPO)}  # run this checkout's stages from a scratch directory


def _run_stage(tmp_path: Path, stage: str, edit=None) -> subprocess.CompletedProcess:
    write_params(tmp_path, edit)
    return subprocess.run(
        [sys.executable, "-m", f"stages.{stage}"], cwd=tmp_path, capture_output=True, text=True, env=CHECKOUT_ENV,
        timeout=120,
    )


@pytest.mark.parametrize("stage, edit, expected", [
    ("prompts", lambda raw: raw["models"]["planted-4l"].update(writer="L9H2"),
     "models.planted-4l.writer = 'L9H2' is not allowed: must be a head LxHy or MLPx with layer 0..3 and head 0..7"),
    ("discover", lambda raw: raw["discovery"].update(top_writers=0),
     "discovery.top_writers = 0 is not allowed: must be an integer from 1 to 10000"),
    ("fig1_resid", lambda raw: raw["fig1"].update(positons=3), "fig1.positons is not allowed: unknown key"),
])
def test_stage_reports_one_line_and_writes_nothing(tmp_path, stage, edit, expected):
    result = _run_stage(tmp_path, stage, edit)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {expected}"), result.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()


def test_corrupt_token_file(tmp_path):
    prompts = tmp_path / "data" / "prompts"
    prompts.mkdir(parents=True)
    np.save(prompts / "tokens.npy", np.ones((2, 8), dtype=np.int64))
    (prompts / "tokens.json").write_text('{"model": "planted-4l", "sha256": "0000"}')
    result = _run_stage(tmp_path, "activations")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: data/prompts/tokens.npy does not match the sha256 in tokens.json: it is corrupt; "
        "re-run `dvc repro prompts`"
    )
    (prompts / "tokens.npy").write_bytes(b"not a numpy file")
    result = _run_stage(tmp_path, "activations")
    assert result.returncode == 2 and "tokens.npy is corrupt" in result.stderr
    assert not (tmp_path / "data" / "activations").exists()


@pytest.mark.parametrize("offline_flag", [None, "1"])
@pytest.mark.parametrize("model", ["gelu-4l", "gpt2-small"])
def test_hub_models_fail_fast_without_hub_or_cache(tmp_path, model, offline_flag):
    """No Hub (a closed local port, or HF_HUB_OFFLINE=1) and an empty cache: one line, no retry loop.

    The subprocess timeout only guards against a hang (huggingface_hub's own retries take ~23 s per file); the
    time itself is not asserted (about 1.5 s on a quiet machine, mostly imports), since a loaded machine stretches it.
    """
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    write_params(tmp_path, model=model)
    env = {k: v for k, v in CHECKOUT_ENV.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path / "hf_home"), HF_ENDPOINT="http://127.0.0.1:9")
    if offline_flag:
        env["HF_HUB_OFFLINE"] = offline_flag
    result = subprocess.run([sys.executable, "-m", "stages.prompts"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    line = result.stderr.strip()
    why = "HF_HUB_OFFLINE is set" if offline_flag else "cannot reach the Hugging Face Hub (http://127.0.0.1:9)"
    repo = params["models"][model]["hf_repo"]
    assert line.startswith(f"error: {why} and {model} weights ({repo}) is not in the local cache"), line
    assert "hf download" in line and "planted-4l, smollm2-135m" in line and "\n" not in line
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()
