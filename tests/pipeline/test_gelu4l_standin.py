"""The main job as a user runs it: `dvc repro` on gelu-4l through the real Hub loading code, then offline.

A local stand-in of the Hugging Face Hub (tests/hub_standin.py) serves fixtures in the real formats
(scripts/build_hub_fixtures.py: random weights, gelu-4l's layers, heads and vocabulary); HF_ENDPOINT points at it
and HF_HOME is a temporary cache. Then the server is stopped and the pipeline reruns from the cache alone.
The prompt rows are compared with what `datasets==2.14.4` itself yielded on the same shards
(tests/fixtures/sampling_2023.json, written by scripts/sampling_2023_fixture.py), never with our own sampler's output.
"""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import ROOT as REPO
from helpers import copy_checkout, run_dvc
from hub_standin import RepoIndex, serve
from scripts.build_hub_fixtures import GELU4L_DATASETS, GELU4L_REPO, TOKENIZER_REPO, build_fixtures

pytestmark = pytest.mark.slow
SAMPLING_2023 = REPO / "tests" / "fixtures" / "sampling_2023.json"
N_TEXT, N_CODE, SEQ_LEN = 24, 6, 128  # the fixture's end-to-end configuration (5x60 / 3x40 shards, buffer 10)


def small_gelu_params(params: dict) -> None:
    """gelu-4l with the authors' procedure on a small prompt set; FAILs on random weights do not stop the run."""
    params["model"] = "gelu-4l"
    params["models"]["gelu-4l"]["prompts"].update(n_text=N_TEXT, n_code=N_CODE, seq_len=SEQ_LEN)
    params["fig5"]["n_resample"] = 16
    params["discovery"]["n_vcomp_prompts"] = 8


def hub_env(home: Path, url: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "ERASURE_", "TRANSFORMERS_"))}
    env["HF_HOME"] = str(home)
    env["HF_ENDPOINT"] = url or "http://127.0.0.1:9"  # no server: connection refused at once
    return env


def repro(work: Path, env: dict, say, *args: str) -> subprocess.CompletedProcess:
    """`dvc repro ARGS`; its output (stdout and stderr together) in `.stdout`."""
    result = run_dvc(["repro", *args], work, say, timeout=900, env=env)
    assert result.returncode == 0, result.stdout[-6000:]
    return result


def metric_bytes(work: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((work / "metrics").glob("*.json"))}


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hub")
    build_fixtures(root)
    return root


@pytest.fixture(scope="module")
def gelu_runs(hub_root, tmp_path_factory, progress) -> dict:
    """One online `dvc repro` through the stand-in, then `dvc repro -f` with HF_HUB_OFFLINE=1 after it stopped."""
    work = copy_checkout(tmp_path_factory.mktemp("gelu"), small_gelu_params)
    home = tmp_path_factory.mktemp("hf_home")
    log: list = []
    with serve(hub_root, log=log) as url:
        repro(work, hub_env(home, url), progress)
    online = {
        "metrics": metric_bytes(work),
        "report": json.loads((work / "paper" / "verification.json").read_text()),
        "tokens": np.load(work / "data" / "prompts" / "tokens.npy"),
    }
    offline = repro(work, {**hub_env(home, None), "HF_HUB_OFFLINE": "1"}, progress, "-f")
    return {"work": work, "home": home, "log": log, "online": online, "offline_output": offline.stdout}


def test_every_gelu_claim_is_evaluated(gelu_runs):
    report = gelu_runs["online"]["report"]
    assert report["model"] == "gelu-4l"
    gelu_claims = [c for c in report["claims"] if c.get("model", "gelu-4l") == "gelu-4l"]
    assert gelu_claims, "the registry has gelu-4l claims"
    statuses = {c["id"]: c["status"] for c in gelu_claims}
    assert set(statuses.values()) <= {"PASS", "FAIL"}, statuses  # never NOT RUN for lack of the model


def test_failed_claims_are_a_finding_the_paper_reports_and_the_gate_catches(gelu_runs):
    """Random weights FAIL claims: `dvc repro` still exited 0 (the fixture asserts it), the paper exists and says at
    its top how many claims FAIL and why; `python -m scripts.check_claims` exits 1 on the same run."""
    work = gelu_runs["work"]
    summary = gelu_runs["online"]["report"]["summary"]["claims"]
    assert summary["fail"] > 0
    md_text = " ".join((work / "paper" / "paper.md").read_text().split())
    assert (work / "paper" / "paper.html").is_file()
    assert f"{summary['pass']} of {summary['total']} paper claims PASS, {summary['fail']} FAIL" in md_text
    assert "> **What FAILed, and why.**" in md_text
    gate = subprocess.run([sys.executable, "-m", "scripts.check_claims"], cwd=work, capture_output=True, text=True,
                          timeout=120)
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert f"{summary['fail']} FAIL" in gate.stdout.splitlines()[-1]


def test_prompt_rows_are_the_2023_librarys(gelu_runs):
    """Marker ids (token 1 of each row) in the order datasets 2.14.4 yielded them, stacked text then code, then
    permuted by torch.randperm after torch.manual_seed(seed), as the authors did."""
    fixture = json.loads(SAMPLING_2023.read_text())
    expected = {}
    for repo, spec in GELU4L_DATASETS.items():
        n = N_TEXT if "c4" in repo else N_CODE
        matches = [c for c in fixture["configurations"] if c["shards"] == {
            "n_shards": spec.n_shards, "rows_per_shard": spec.rows_per_shard, "seed": spec.seed,
            "marker_base": spec.marker_base, "vocab_size": spec.vocab_size, "row_group_size": spec.row_group_size,
        } and c["seed"] == 5235 and c["buffer_size"] == 10 and c["n"] >= n]
        assert matches, f"tests/fixtures/sampling_2023.json has no configuration for {repo}"
        expected[repo] = matches[0]["markers"][:n]
    stacked = expected["NeelNanda/c4-tokenized-2b"] + expected["NeelNanda/code-tokenized"]
    torch.manual_seed(5235)
    order = torch.randperm(len(stacked)).tolist()
    tokens = gelu_runs["online"]["tokens"]
    assert tokens.shape == (N_TEXT + N_CODE, SEQ_LEN) and (tokens[:, 0] == 1).all()
    assert tokens[:, 1].tolist() == [stacked[i] for i in order]


def test_inputs_name_the_commits_and_the_weights_hash(gelu_runs, hub_root):
    inputs = json.loads(gelu_runs["online"]["metrics"]["inputs.json"])
    hub = inputs["hub"]
    assert set(hub) == {"model", "tokenizer", "NeelNanda/c4-tokenized-2b", "NeelNanda/code-tokenized"}
    weights = (hub_root / "models" / GELU4L_REPO / "model_final.pth").read_bytes()
    assert hub["model"]["weights_file"] == "model_final.pth"
    assert hub["model"]["weights_sha256"] == hashlib.sha256(weights).hexdigest()
    index = RepoIndex(hub_root)  # the stand-in's commit of each repo
    for role, src in hub.items():
        kind = "datasets" if role.startswith("NeelNanda/c") else "models"
        repo = {"model": GELU4L_REPO, "tokenizer": TOKENIZER_REPO}.get(role, role)
        assert src["repo"] == repo and src["commit"] == index.get(kind, repo).sha, role
    report_md = (gelu_runs["work"] / "paper" / "verification.md").read_text()
    assert hub["model"]["commit"] in report_md and hub["model"]["weights_sha256"] in report_md


def test_offline_rerun_from_the_cache_gives_the_same_bytes(gelu_runs):
    assert metric_bytes(gelu_runs["work"]) == gelu_runs["online"]["metrics"]
    assert "loaded from the local Hugging Face cache (HF_HUB_OFFLINE is set)" in gelu_runs["offline_output"]


def test_unreachable_hub_falls_back_to_the_cache(gelu_runs, progress):
    """No HF_HUB_OFFLINE, no server: the stage finds the endpoint closed and reads the cache."""
    result = repro(gelu_runs["work"], hub_env(gelu_runs["home"], None), progress, "-f", "-s", "prompts")
    assert "cannot reach the Hugging Face Hub (http://127.0.0.1:9)" in result.stdout
    assert np.array_equal(np.load(gelu_runs["work"] / "data" / "prompts" / "tokens.npy"),
                          gelu_runs["online"]["tokens"])


COMPARE_WITH_TRANSFORMERLENS = """
import json, sys, torch
from erasure.models.hub import prepare_hub
prepare_hub(5)
from transformer_lens import HookedTransformer
from erasure.params.load import load_params
from erasure.models.load import load_model
params = load_params(sys.argv[1])
ours = load_model(params)
cfg = params.entry
theirs = HookedTransformer.from_pretrained(
    cfg.tl_name, fold_ln=cfg.fold_ln, center_writing_weights=cfg.center_writing_weights,
    center_unembed=cfg.center_unembed, fold_value_biases=cfg.fold_value_biases,
    refactor_factored_attn_matrices=cfg.refactor_factored_attn_matrices, device="cpu")
a, b = ours.state_dict(), theirs.state_dict()
same = sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
tokens = ours.to_tokens("It's in the cupboard, either on the top or on the")
print(json.dumps({"same": same, "n": len(a), "tok": tokens[0].tolist(),
                  "tok_theirs": theirs.to_tokens("It's in the cupboard, either on the top or on the")[0].tolist(),
                  "logits_equal": torch.equal(ours(tokens), theirs(tokens))}))
"""


@pytest.mark.parametrize("model", ["gelu-4l", "gpt2-small"])
def test_loaded_weights_equal_transformerlens_own_loading(hub_root, tmp_path, model):
    """Our cache-based loader gives exactly the weights TransformerLens's own `from_pretrained` gives online."""
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["model"] = model
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with serve(hub_root) as url:
        env = {**hub_env(tmp_path / "hf_home", url), "PYTHONPATH": str(REPO)}
        result = subprocess.run([sys.executable, "-c", COMPARE_WITH_TRANSFORMERLENS, str(tmp_path / "params.yaml")],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["same"] and out["n"] > 10 and out["logits_equal"]
    assert out["tok"] == out["tok_theirs"] and out["tok"][0] == (1 if model == "gelu-4l" else out["tok"][0])


def test_gpt2_small_runs_online_then_offline(hub_root, tmp_path):
    """The README's other Hub entry, in its own (HF) format: the prompts stage loads it online, then offline."""
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["model"] = "gpt2-small"
    params["models"]["gpt2-small"]["prompts"].update(n_text=3, n_code=1, seq_len=32)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    home = tmp_path / "hf_home"
    cmd = [sys.executable, "-m", "stages.prompts"]
    with serve(hub_root) as url:
        online = subprocess.run(cmd, cwd=tmp_path, env={**hub_env(home, url), "PYTHONPATH": str(REPO)},
                                capture_output=True, text=True, timeout=600)
    assert online.returncode == 0, online.stderr[-3000:]
    first = np.load(tmp_path / "data" / "prompts" / "tokens.npy")
    offline = subprocess.run(cmd, cwd=tmp_path, env={**hub_env(home, None), "HF_HUB_OFFLINE": "1",
                                                     "PYTHONPATH": str(REPO)},
                             capture_output=True, text=True, timeout=600)
    assert offline.returncode == 0, offline.stderr[-3000:]
    assert np.array_equal(np.load(tmp_path / "data" / "prompts" / "tokens.npy"), first)
    assert first.shape == (4, 32)


def run_prompts_stage(hub_root: Path, tmp_path: Path, edit) -> subprocess.CompletedProcess:
    """`python -m stages.prompts` on gelu-4l (small prompt set, params edited) against the stand-in."""
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    small_gelu_params(params)
    edit(params["models"]["gelu-4l"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with serve(hub_root) as url:
        return subprocess.run([sys.executable, "-m", "stages.prompts"], cwd=tmp_path, capture_output=True, text=True,
                              env={**hub_env(tmp_path / "hf_home", url), "PYTHONPATH": str(REPO)}, timeout=600)


def test_a_weights_file_that_differs_from_the_pinned_hash_is_not_loaded(hub_root, tmp_path):
    result = run_prompts_stage(hub_root, tmp_path, lambda m: m.update(weights_sha256="0" * 64))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: model_final.pth has sha256 ")  # after progress
    assert "not the models.gelu-4l.weights_sha256 = " + "0" * 64 in result.stderr and "nothing was loaded" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "data").exists()


def test_pinned_revisions_are_used_and_unknown_ones_refused(hub_root, tmp_path):
    index = RepoIndex(hub_root)
    commits = {"revision": index.get("models", GELU4L_REPO).sha,
               "tokenizer_revision": index.get("models", TOKENIZER_REPO).sha}
    text = index.get("datasets", "NeelNanda/c4-tokenized-2b").sha
    weights = hashlib.sha256((hub_root / "models" / GELU4L_REPO / "model_final.pth").read_bytes()).hexdigest()

    def pin(model_cfg):
        model_cfg.update(commits, weights_sha256=weights)
        model_cfg["prompts"]["text_revision"] = text

    (tmp_path / "pinned").mkdir()
    ok = run_prompts_stage(hub_root, tmp_path / "pinned", pin)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "pin it with" not in ok.stderr  # the hash is pinned, so no note
    hub = json.loads((tmp_path / "pinned" / "metrics" / "inputs.json").read_text())["hub"]
    assert hub["model"]["commit"] == commits["revision"] and hub["tokenizer"]["commit"] == commits["tokenizer_revision"]
    assert hub["NeelNanda/c4-tokenized-2b"]["commit"] == text
    (tmp_path / "unknown").mkdir()
    bad = run_prompts_stage(hub_root, tmp_path / "unknown", lambda m: m.update(revision="no-such-branch"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1] == ("error: gelu-4l weights (NeelNanda/GELU_4L512W_C4_Code): the requested revision "
                                  "does not exist on the Hub")
