"""Bad params and corrupt inputs: one line naming the parameter and what is allowed, exit 2, no output left."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CHECKOUT_ENV = {**os.environ, "PYTHONPATH": str(REPO)}  # run this checkout's stages from a scratch directory


def _run_stage(tmp_path: Path, stage: str, edit=None) -> subprocess.CompletedProcess:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["model"] = "planted-4l"
    if edit:
        edit(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return subprocess.run(
        [sys.executable, "-m", f"stages.{stage}"], cwd=tmp_path, capture_output=True, text=True, env=CHECKOUT_ENV,
        timeout=120,
    )


def _set(path: str, value):
    def edit(params):
        node = params
        *parents, last = path.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    return edit


BAD = {
    "unknown model": (_set("model", "gpt-5"), "model = 'gpt-5' is not allowed: must be one of gelu-4l, planted-4l, smollm2-135m, gpt2-small"),
    "hub model without shape": (lambda p: (_set("model", "gpt2-small")(p), p["models"]["gpt2-small"].pop("shape")), "models.gpt2-small.shape = None is not allowed: must give n_layers"),
    "head beyond a hub model": (lambda p: (_set("model", "gpt2-small")(p), _set("models.gpt2-small.writer", "L12H0")(p), _set("models.gpt2-small.erasers", ["L13H0"])(p)), "models.gpt2-small.writer = 'L12H0' is not allowed: must be a head LxHy or MLPx with layer 0..11 and head 0..11"),
    "head beyond the model": (_set("models.planted-4l.writer", "L9H2"), "models.planted-4l.writer = 'L9H2' is not allowed"),
    "empty eraser set": (_set("models.planted-4l.erasers", []), "models.planted-4l.erasers = [] is not allowed"),
    "eraser before writer": (_set("models.planted-4l.erasers", ["L0H1"]), "erasers must sit in a layer after the writer"),
    "seq_len above n_ctx": (_set("models.planted-4l.prompts.seq_len", 2048), "seq_len = 2048 is not allowed: must be an integer from 2 to 1024"),
    "zero prompts": (lambda p: (_set("models.planted-4l.prompts.n_text", 0)(p), _set("models.planted-4l.prompts.n_code", 0)(p)), "n_text + n_code = 0 is not allowed"),
    "negative batch": (_set("activations.batch_size", 0), "activations.batch_size = 0 is not allowed"),
    "bad band": (_set("fig1.bands", ["10-90"]), "fig1.bands = '10-90' is not allowed: must be one of 25-75, 12.5-87.5"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_params_are_named(tmp_path, case):
    from erasure.config import ParamError, load_params
    from erasure.figparams import plot_params

    edit, expected = BAD[case]
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["model"] = "planted-4l"
    edit(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.raises(ParamError) as err:
        plot_params(load_params(tmp_path / "params.yaml"), "fig1")
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_stage_reports_one_line_and_writes_nothing(tmp_path):
    edit, expected = BAD["head beyond the model"]
    result = _run_stage(tmp_path, "prompts", edit)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
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
    """No Hub (a closed local port, or HF_HUB_OFFLINE=1) and an empty cache: one line within hub_timeout_s."""
    import time

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert params["model"] == "gelu-4l"  # the default stays the paper's model
    params["model"] = model
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {k: v for k, v in CHECKOUT_ENV.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path / "hf_home"), HF_ENDPOINT="http://127.0.0.1:9")
    if offline_flag:
        env["HF_HUB_OFFLINE"] = offline_flag
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "stages.prompts"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=30)
    elapsed = time.perf_counter() - start
    assert result.returncode == 2
    line = result.stderr.strip()
    why = "HF_HUB_OFFLINE is set" if offline_flag else "cannot reach the Hugging Face Hub (http://127.0.0.1:9)"
    repo = params["models"][model]["hf_repo"]
    assert line.startswith(f"error: {why} and {model} weights ({repo}) is not in the local cache"), line
    assert "hf download" in line and "planted-4l, smollm2-135m" in line and "\n" not in line
    assert elapsed < params["models"][model]["hub_timeout_s"], elapsed
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()
