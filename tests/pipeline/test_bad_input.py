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


@pytest.mark.parametrize("model", ["gelu-4l", "gpt2-small"])
def test_hub_models_fail_fast_offline(tmp_path, model):
    """The default gelu-4l (and any Hub model): without the Hub the run stops within 10 s naming the offline models."""
    from erasure.models.hub import hub_reachable

    if hub_reachable(5):
        pytest.skip("the Hugging Face Hub is reachable here: the offline failure cannot be shown")
    assert yaml.safe_load((REPO / "params.yaml").read_text())["model"] == "gelu-4l"  # the default: the paper's
    write_params(tmp_path, model=model)
    result = subprocess.run([sys.executable, "-m", "stages.prompts"], cwd=tmp_path, env=CHECKOUT_ENV,
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert line.startswith("error: cannot reach the Hugging Face Hub") and "planted-4l, smollm2-135m" in line
    assert "\n" not in line
    assert not (tmp_path / "data").exists()
