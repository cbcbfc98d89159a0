"""Bad input: every case ends in exit code 2, exactly one stderr line `error: ...` naming the parameter or file and
what is wrong, no traceback, and the tree exactly as before (no output, no temp file).

The cases follow issue 9's classes: `traceback` (inputs that used to crash), `silent` (inputs that used to give a
wrong or misread result without a word), `message` (errors whose line lacked the position or the parameter).
The fourth class, `leftover` (disk full, read-only file system, SIGTERM, kill -9), runs real processes on a small
tmpfs: tests/pipeline/test_faults.py (slow).

The stages run in this process exactly as `python -m stages.X` runs them (runpy, as __main__), in a scratch copy
of a finished-run layout whose inputs are synthetic and need no model: every case fails before a model would
load. A few cases run as real subprocesses, to show the interpreter's own exit code and stderr.
"""
from __future__ import annotations

import hashlib
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from erasure.analysis.prompt_files import save_prompts
from erasure.mechanism.names import all_components, checkpoint_names
from helpers import committed_run, repo_params, write_params
from synthetic_metrics import sweep_records

REPO = Path(__file__).resolve().parents[2]
CHECKOUT_ENV = {**os.environ, "PYTHONPATH": str(REPO)}  # run this checkout's stages from a scratch directory
MODEL = "planted-4l"
ERASERS = ["L2H2", "L2H3", "L2H4", "L2H5", "L2H6", "L2H7"]
N_DLA = 2  # prompts with Fig 4 points
REPO_FILES = ["dvc.yaml", "paper/claims.yaml", "paper/template.md", "paper/style.css"]
COMMITTED_FILES = ["dvc.lock", "paper/verification.json", "metrics/*.json"]  # git HEAD's: not an applied experiment's
FAST_YAML = (getattr(yaml, "CSafeLoader", yaml.SafeLoader), getattr(yaml, "CSafeDumper", yaml.SafeDumper))
SMALL = {"n_text": 3, "n_code": 1, "seq_len": 16}  # the scratch run's prompt set: small files, fast copies
ATLAS = "data/discovery_atlas.npz"
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


def build_inputs(root: Path) -> None:
    """A finished planted-4l run's layout: params (a small prompt set), prompts, activation tables and DLA cache
    (synthetic, in the documented shapes), the committed run's metrics (git HEAD), registry and template."""
    write_params(root, lambda raw: (raw["models"][MODEL]["prompts"].update(SMALL),
                                    raw["fig4"]["code_variant"].update(n_prompts=1, start_pos=2)))
    cfg = {**repo_params(MODEL)["models"][MODEL]["prompts"], **SMALL}
    n, seq = cfg["n_text"] + cfg["n_code"], cfg["seq_len"]
    rng = np.random.default_rng(0)
    tokens = rng.integers(3, 1000, size=(n, seq), dtype=np.int64)
    tokens[:, 0] = 1
    save_prompts(root / "data/prompts", torch.from_numpy(tokens), {
        "model": MODEL, "source": "offline", "n_text": cfg["n_text"], "n_code": cfg["n_code"],
        "is_code": [False] * cfg["n_text"] + [True] * cfg["n_code"]})
    act = root / "data/activations"
    act.mkdir(parents=True)
    components, checkpoints = [c.name for c in all_components(4, 8)], checkpoint_names(4)
    np.save(act / "resid_pr.npy", rng.normal(size=(n, seq, 2, len(checkpoints))).astype(np.float32))
    np.save(act / "component_pr.npy", rng.normal(size=(n, seq, 2, len(components))).astype(np.float32))
    n_code = seq - 1 - 2  # code variant: sources start_pos = 2 .. seq - 2 of one prompt
    meta = {"model": MODEL, "writer": "L0H2", "erasers": ERASERS, "roles_source": "params", "roles_note": None,
            "patch_layers": [2], "components": components,
            "checkpoints": checkpoints, "runs": ["clean", "patched"], "n_prompts": n, "seq_len": seq,
            "n_dla_prompts": N_DLA, "d_model": 512,
            "fig4": {"n_prompts": N_DLA, "code_variant": {"n_prompts": 1, "start_pos": 2, "has_heads": True},
                     "aligned_top_k": 20,
                     "aligned_tokens": [{"token": f"t{i}", "id": i, "score": 1.0 - i / 20} for i in range(20)]}}
    (act / "meta.json").write_text(json.dumps(meta))
    vec = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    np.savez(act / "fig4_points.npz", writer=vec(N_DLA, seq), vcomp=vec(N_DLA, seq), erasers=vec(N_DLA, seq),
             code_x=vec(n_code), code_y=vec(n_code))
    for rel in REPO_FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, root / rel)
    committed = committed_run(root / ".committed")
    for pattern in COMMITTED_FILES:
        for path in committed.glob(pattern):
            (root / path.relative_to(committed)).parent.mkdir(parents=True, exist_ok=True)
            path.rename(root / path.relative_to(committed))
    shutil.rmtree(committed)
    writers = [r["name"] for r in json.loads((root / "metrics/discovery.json").read_text())["ranking"]]
    matrix = rng.normal(size=(len(writers), len(components)))
    matrix[:, :8] = np.nan  # layer 0's components read no writer
    np.savez(root / ATLAS, writers=np.array(writers), components=np.array(components), matrix=matrix,
             shape=np.array([4, 8]))
    (root / "sweep").mkdir()
    for model, record in sweep_records().items():  # the reader's current format, whatever the committed sweep holds
        (root / "sweep" / f"{model}.json").write_text(json.dumps(record))
    audit = root / "metrics/dla_audit.json"
    if not audit.exists():  # a checkout whose committed run predates stage dla_audit: its synthetic record
        from synthetic_metrics import audit_metrics

        audit.write_text(json.dumps(audit_metrics(MODEL, "L0H2", ERASERS, 0.87)))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("inputs")
    build_inputs(root)
    return root


@pytest.fixture
def work(inputs, tmp_path) -> Path:
    """A fresh copy of the inputs for one case."""
    shutil.copytree(inputs, tmp_path / "run")
    return tmp_path / "run"


def snapshot(root: Path) -> dict[str, str]:
    """Every file under root (hidden ones too) with the sha256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run_here(stage: str, root: Path, monkeypatch, capsys) -> tuple[int, str]:
    """`python -m stages.<stage>` in this process, cwd root: (exit code, stderr). An exception other than
    SystemExit propagates, failing the test: that is the traceback a user would have seen."""
    monkeypatch.chdir(root)
    handler = signal.getsignal(signal.SIGTERM)  # run_stage installs its own; pytest keeps the default
    capsys.readouterr()
    code = 0
    try:
        runpy.run_module(f"stages.{stage}", run_name="__main__")
    except SystemExit as stop:
        code = stop.code
    finally:
        signal.signal(signal.SIGTERM, handler)
    return code, capsys.readouterr().err


def assert_one_line(code: int, stderr: str, expected: list[str]) -> None:
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for text in expected:
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"


# ---- edits of the scratch copy ---------------------------------------------------------------------------------

def param(path: str, value=None, delete: bool = False):
    """Set (or delete) a dotted key of params.yaml."""
    def edit(root: Path):
        raw = yaml.load((root / "params.yaml").read_text(), Loader=FAST_YAML[0])
        node = raw
        *parents, last = path.split(".")
        for key in parents:
            node = node[key]
        if delete:
            del node[last]
        else:
            node[last] = value
        (root / "params.yaml").write_text(yaml.dump(raw, Dumper=FAST_YAML[1], sort_keys=False))
    return edit


def drop(path: str):
    return param(path, delete=True)


def write(rel: str, content: str | bytes):
    def edit(root: Path):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return edit


def remove(rel: str):
    def edit(root: Path):
        path = root / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return edit


def make_dir(rel: str):
    def edit(root: Path):
        remove(rel)(root)
        (root / rel).mkdir()
        (root / rel / "x").write_text("x")
    return edit


def yaml_edit(rel: str, change):
    def edit(root: Path):
        data = yaml.load((root / rel).read_text(), Loader=FAST_YAML[0])
        change(data)
        (root / rel).write_text(yaml.dump(data, Dumper=FAST_YAML[1], sort_keys=False))
    return edit


def json_edit(rel: str, change):
    def edit(root: Path):
        data = json.loads((root / rel).read_text())
        data = change(data) or data
        (root / rel).write_text(json.dumps(data))
    return edit


def tokens(change, rehash: bool = True):
    """Change tokens.npy; with rehash, tokens.json gets the new sha256 (so the checks behind the hash are hit)."""
    def edit(root: Path):
        path = root / "data/prompts/tokens.npy"
        array = change(np.load(path))
        np.save(path, array)
        if rehash:
            digest = hashlib.sha256(np.ascontiguousarray(array, dtype=np.int64).tobytes()).hexdigest()
            json_edit("data/prompts/tokens.json", lambda d: d.update(sha256=digest))(root)
    return edit


def table(name: str, change):
    def edit(root: Path):
        path = root / "data/activations" / name
        np.save(path, change(np.load(path)))
    return edit


def points(change):
    def edit(root: Path):
        path = root / "data/activations/fig4_points.npz"
        with np.load(path) as f:
            arrays = dict(f)
        change(arrays)
        np.savez(path, **arrays)
    return edit


def both(*edits):
    def edit(root: Path):
        for e in edits:
            e(root)
    return edit


def at(index: tuple, value):
    def change(array):
        array = array.copy()
        array[index] = value
        return array
    return change


AUTO = both(param(f"models.{MODEL}.writer", "auto"), param(f"models.{MODEL}.erasers", "auto"))
P = f"models.{MODEL}"
TOK_JSON, TOK_NPY = "data/prompts/tokens.json", "data/prompts/tokens.npy"
META = "data/activations/meta.json"

# ---- the cases: (class, stage, edit, substrings of the one line) -----------------------------------------------

PARAMS_FILE = {
    "yaml syntax": ("message", write("params.yaml", "model: planted-4l\nmodels: [1\n"), ["params.yaml is not valid YAML at line 3, column 1"]),
    "yaml mapping in a scalar": ("message", write("params.yaml", "model: a\n  b: [1\n"), ["params.yaml is not valid YAML at line 2, column 4: mapping values are not allowed"]),
    "yaml tab indent": ("message", write("params.yaml", "model: a\n\tmodels: 1\n"), ["params.yaml is not valid YAML at line 2, column 1"]),
    "yaml unclosed quote": ("message", write("params.yaml", 'model: "planted-4l\n'), ["params.yaml is not valid YAML at line 2, column 1"]),
    "duplicate key": ("silent", write("params.yaml", "model: planted-4l\nmodel: gelu-4l\n"), ["params.yaml is not valid YAML at line 2, column 1: key 'model' appears twice"]),
    "not UTF-8": ("traceback", write("params.yaml", b"model: planted-4l\nmodels: \xff\xfe\n"), ["params.yaml is not UTF-8 text (byte 26)"]),
    "empty": ("traceback", write("params.yaml", ""), ["params.yaml holds nothing: must be a mapping of model, models, "]),
    "a list": ("traceback", write("params.yaml", "- model\n- planted-4l\n"), ["params.yaml holds a list: must be a mapping of model, models, "]),
    "yaml undefined alias": ("message", write("params.yaml", "model: planted-4l\nfig1: *bands\n"), ["params.yaml is not valid YAML at line 2, column 7: found undefined alias"]),
    "yaml bad indentation": ("message", write("params.yaml", "model: planted-4l\nfig1:\n  dpi: 1\n bands: []\n"), ["params.yaml is not valid YAML at line 4, column 2"]),
    "absent": ("traceback", remove("params.yaml"), ["params.yaml not found: run from the repository root"]),
    "a directory": ("traceback", make_dir("params.yaml"), ["params.yaml cannot be read: Is a directory (EISDIR)"]),
}

PARAM_VALUES = {
    "seed a string": ("traceback", param(f"{P}.seed", "1"), [f"{P}.seed = '1' is not allowed: must be an integer from 0 to"]),
    "seed a float": ("traceback", param(f"{P}.seed", 2.5), [f"{P}.seed = 2.5 is not allowed"]),
    "seed negative": ("traceback", param(f"{P}.seed", -1), [f"{P}.seed = -1 is not allowed"]),
    "seed 2^70": ("traceback", param(f"{P}.seed", 2**70), [f"{P}.seed = 1180591620717411303424 is not allowed"]),
    "seed a bool": ("silent", param(f"{P}.seed", True), [f"{P}.seed = True is not allowed"]),
    "prompt seed a string": ("traceback", param(f"{P}.prompts.seed", "5235"), [f"{P}.prompts.seed = '5235' is not allowed"]),
    "tolerance tiny": ("traceback", param("paper.regression.abs", "tiny"), ["paper.regression.abs = 'tiny' is not allowed: must be a number from 0 to 1"]),
    "tolerance nan": ("silent", param("paper.regression.rel", float("nan")), ["paper.regression.rel = nan is not allowed"]),
    "tolerance inf": ("silent", param("paper.regression.abs", float("inf")), ["paper.regression.abs = inf is not allowed"]),
    "the removed paper.strict": ("silent", param("paper.strict", False), ["paper.strict is not allowed: unknown key; the known keys are regression"]),
    "include_bos yes": ("silent", param("discovery.include_bos", "yes"), ["discovery.include_bos = 'yes' is not allowed"]),
    "typo in a section": ("silent", param("fig1.positons", 3), ["fig1.positons is not allowed: unknown key; the known keys are bands, dpi"]),
    "typo in a nested section": ("silent", param(f"{P}.prompts.seqlen", 64), [f"{P}.prompts.seqlen is not allowed: unknown key"]),
    "typo at the top": ("silent", param("fig6", {"dpi": 100}), ["fig6 is not allowed: unknown key"]),
    "prompts a list": ("traceback", param("prompts", [1, 2]), ["prompts is not allowed: unknown key"]),
    "model prompts a list": ("traceback", param(f"{P}.prompts", [1, 2]), [f"{P}.prompts = [1, 2] is not allowed: must be a mapping with source: authors | offline"]),
    "model entry a number": ("traceback", param(f"{P}", 3), [f"{P} = 3 is not allowed: must be a mapping with loader: planted"]),
    "section a list": ("traceback", param("fig4", [1, 2]), ["fig4 = [1, 2] is not allowed: must be a mapping of"]),
    "section missing": ("silent", drop("stats"), ["stats is missing from params.yaml"]),
    "key missing": ("silent", drop("discovery.eraser_threshold"), ["discovery.eraser_threshold is missing from params.yaml"]),
    "unknown model": ("traceback", param("model", "gpt-5"), ["model = 'gpt-5' is not allowed: must be one of"]),
    "writer beyond the model": ("traceback", param(f"{P}.writer", "L9H2"), [f"{P}.writer = 'L9H2' is not allowed"]),
    "seq_len above n_ctx": ("traceback", param(f"{P}.prompts.seq_len", 2048), [f"{P}.prompts.seq_len = 2048 is not allowed", "n_ctx"]),
    "bos id beyond d_vocab": ("traceback", param("models.smollm2-135m.bos_token_id", 49152), ["models.smollm2-135m.bos_token_id = 49152 is not allowed"]),
    "bos id negative": ("silent", param("models.smollm2-135m.bos_token_id", -1), ["models.smollm2-135m.bos_token_id = -1 is not allowed"]),
    "identical fig5 pair": ("silent", param("fig5.prompts.p2.pair", [" State", " State"]), ["fig5.prompts.p2.pair = [' State', ' State'] is not allowed: must be two different tokens"]),
    "one-sided fig5 pair": ("silent", param("fig5.prompts.p2.pair", [" State"]), ["fig5.prompts.p2.pair = [' State'] is not allowed"]),
    "fig5 direction": ("silent", param("fig5.direction", "both"), ["fig5.direction = 'both' is not allowed: must be one of top2, pair"]),
    "batch size 0": ("traceback", param("activations.batch_size", 0), ["activations.batch_size = 0 is not allowed"]),
    "dpi a float": ("traceback", param("fig1.dpi", 120.5), ["fig1.dpi = 120.5 is not allowed"]),
    "no band": ("traceback", param("fig2.bands", []), ["fig2.bands = [] is not allowed"]),
    "eraser set not a list": ("traceback", param(f"{P}.erasers", "L2H2"), [f"{P}.erasers = 'L2H2' is not allowed"]),
    "hub timeout 0": ("traceback", param("models.gelu-4l.hub_timeout_s", 0), ["models.gelu-4l.hub_timeout_s = 0 is not allowed"]),
}


TOKEN_FILES = {
    "tokens.json absent": ("traceback", remove(TOK_JSON), [f"{TOK_JSON} not found: run `dvc repro prompts` first"]),
    "tokens.json not JSON": ("traceback", write(TOK_JSON, "{model: x"), [f"{TOK_JSON} is not valid JSON at line 1, column 2"]),
    "tokens.json not UTF-8": ("traceback", write(TOK_JSON, b'{"model": "\xff"}'), [f"{TOK_JSON} is not UTF-8 text (byte 11)"]),
    "tokens.json a list": ("traceback", write(TOK_JSON, "[1, 2]"), [f"{TOK_JSON} holds [1, 2]: must be a mapping of model, sha256"]),
    "tokens.json without sha256": ("traceback", json_edit(TOK_JSON, lambda d: d.pop("sha256") and None), [f"{TOK_JSON}: sha256 is missing"]),
    "tokens.json without model": ("traceback", json_edit(TOK_JSON, lambda d: d.pop("model") and None), [f"{TOK_JSON}: model is missing"]),
    "tokens.json model a number": ("traceback", json_edit(TOK_JSON, lambda d: d.update(model=4)), [f"{TOK_JSON}: model = 4 is not allowed"]),
    "tokens.json short is_code": ("silent", json_edit(TOK_JSON, lambda d: d.update(is_code=d["is_code"][:-1])), [f"{TOK_JSON}: is_code has 3 flags (0 true), not n_text + n_code = 4 (1 true)"]),
    "tokens.json is a directory": ("traceback", make_dir(TOK_JSON), [f"{TOK_JSON} cannot be read: Is a directory (EISDIR)"]),
    "built for another model": ("silent", json_edit(TOK_JSON, lambda d: d.update(model="smollm2-135m")), ["data/prompts was built for smollm2-135m, not planted-4l"]),
    "tokens.npy absent": ("traceback", remove(TOK_NPY), [f"{TOK_NPY} not found"]),
    "tokens.npy garbage": ("traceback", write(TOK_NPY, b"not a numpy file"), [f"{TOK_NPY} is corrupt"]),
    "tokens.npy hash differs": ("silent", tokens(at((0, 5), 7), rehash=False), [f"{TOK_NPY} does not match the sha256 in tokens.json"]),
    "tokens.npy floats": ("silent", tokens(lambda a: a.astype(np.float32), rehash=False), [f"{TOK_NPY} does not match the sha256"]),
    "shape other than params": ("silent", tokens(lambda a: a[:-1]), [f"{TOK_NPY} has shape (3, 16), but {P}.prompts asks for (n_text + n_code, seq_len) = (4, 16)"]),
    "rows longer than seq_len": ("traceback", tokens(lambda a: np.concatenate([a, a], axis=1)), [f"{TOK_NPY} has shape (4, 32)"]),
    "id = d_vocab": ("traceback", tokens(at((3, 9), 48262)), [f"{TOK_NPY} holds token id 48262 at row 3, position 9", "from 0 to 48261"]),
    "id far beyond d_vocab": ("traceback", tokens(at((0, 1), 2**40)), [f"{TOK_NPY} holds token id 1099511627776 at row 0, position 1"]),
    "negative id": ("silent", tokens(at((2, 2), -3)), [f"{TOK_NPY} holds token id -3 at row 2, position 2"]),
}

ACTIVATION_FILES = {
    "meta.json absent": ("traceback", remove(META), [f"{META} not found: run `dvc repro activations` first"]),
    "meta.json not JSON": ("traceback", write(META, '{"model": '), [f"{META} is not valid JSON at line 1, column 11"]),
    "meta.json without n_prompts": ("traceback", json_edit(META, lambda d: d.pop("n_prompts") and None), [f"{META}: n_prompts is missing"]),
    "meta.json n_prompts a string": ("traceback", json_edit(META, lambda d: d.update(n_prompts="4")), [f"{META}: n_prompts = '4' is not allowed"]),
    "meta.json runs": ("traceback", json_edit(META, lambda d: d.update(runs=["patched", "clean"])), [f"{META}: runs = ['patched', 'clean'] is not allowed"]),
    "meta.json unknown eraser": ("traceback", json_edit(META, lambda d: d.update(erasers=["L9H9"])), [f"{META}: writer/erasers ['L0H2', 'L9H9'] are not allowed"]),
    "meta.json a list": ("traceback", write(META, "[]"), [f"{META} holds []: must be a mapping"]),
    "table absent": ("traceback", remove("data/activations/resid_pr.npy"), ["data/activations/resid_pr.npy not found"]),
    "table garbage": ("traceback", write("data/activations/component_pr.npy", b"\x93NUMPY garbage"), ["data/activations/component_pr.npy is corrupt"]),
    "table shape": ("traceback", table("resid_pr.npy", lambda a: a[:, :-1]), ["data/activations/resid_pr.npy is float32 (4, 15, 2, 9), but meta.json says float32 (4, 16, 2, 9)"]),
    "table float64": ("silent", table("component_pr.npy", lambda a: a.astype(np.float64)), ["data/activations/component_pr.npy is float64"]),
    "one NaN": ("silent", table("component_pr.npy", at((3, 7, 0, 20), np.nan)), ["data/activations/component_pr.npy holds 1 NaN/inf values (first: prompt 3, position 7, clean L2H2 = nan)"]),
    "one inf": ("silent", table("resid_pr.npy", at((1, 0, 1, 3), np.inf)), ["data/activations/resid_pr.npy holds 1 NaN/inf values (first: prompt 1, position 0, patched resid_mid1 = inf)"]),
    "all NaN": ("traceback", table("resid_pr.npy", lambda a: np.full_like(a, np.nan)), ["data/activations/resid_pr.npy holds 1152 NaN/inf values (first: prompt 0, position 0, clean resid_pre0 = nan)"]),
}

PTS = "data/activations/fig4_points.npz"
DLA_FILES = {
    "points absent": ("traceback", remove(PTS), [f"{PTS} not found"]),
    "points garbage": ("traceback", write(PTS, b"garbage"), [f"{PTS} is unreadable"]),
    "points lack a key": ("traceback", points(lambda a: a.pop("code_y")), [f"{PTS} lacks code_y"]),
    "points shape": ("traceback", points(lambda a: a.update(vcomp=a["vcomp"][:, :-1])), [f"{PTS}: vcomp has shape (2, 15), expected (2, 16)"]),
    "points NaN": ("silent", points(lambda a: a["writer"].reshape(-1).__setitem__(0, np.nan)), [f"{PTS}: writer holds 1 NaN/inf values"]),
    "points of another model": ("silent", json_edit(META, lambda d: d.update(model="gelu-4l")), ["data/activations was computed for model 'gelu-4l'"]),
    "meta.json without fig4": ("traceback", json_edit(META, lambda d: d.pop("fig4") and None), [f"{META}: fig4 is missing"]),
}

# With auto roles, fig4_dla takes the writer and erasers the activations stage recorded in meta.json (it reads no
# metrics/discovery.json: a run whose discovery selects nothing still has its tables' roles there).
ROLE_FILES = {
    "meta.json without roles_source": ("traceback", both(AUTO, json_edit(META, lambda d: d.pop("roles_source") and None)), [f"{META}: roles_source is missing"]),
    "meta.json roles beyond the tables": ("silent", both(AUTO, json_edit(META, lambda d: d.update(writer="L9H9"))), [f"{META}: writer/erasers ['L9H9', 'L2H2'"]),
}

REPORT_FILES = {
    "a metric not JSON": ("traceback", write("metrics/fig2_components.json", '{"model": "planted-4l",'), ["metrics/fig2_components.json is not valid JSON at line 1, column 24"]),
    "a metric a list": ("traceback", write("metrics/fig2_components.json", "[1, 2]"), ["metrics/fig2_components.json holds a list, not a JSON object of metrics"]),
    "a metric not UTF-8": ("traceback", write("metrics/fig1_resid.json", b'{"model": "\xe9"}'), ["metrics/fig1_resid.json is not UTF-8 text"]),
    "claims.yaml syntax": ("message", write("paper/claims.yaml", "claims:\n  - id: a\n    claim: [\n"), ["paper/claims.yaml is not valid YAML at line 4, column 1"]),
    "claims.yaml not UTF-8": ("traceback", write("paper/claims.yaml", b"claims: [\xff]\n"), ["paper/claims.yaml is not UTF-8 text (byte 9)"]),
    "claims.yaml paper a list": ("traceback", yaml_edit("paper/claims.yaml", lambda r: r.update(paper=[1])), ["paper/claims.yaml: paper = [1] must be a mapping"]),
    "claims.yaml claim id a list": ("traceback", yaml_edit("paper/claims.yaml", lambda r: r["claims"][0].update(id=["x"])), ["paper/claims.yaml: claim ['x']: id = ['x'] must be a non-empty string"]),
    "claims.yaml claim model a list": ("silent", yaml_edit("paper/claims.yaml", lambda r: r["claims"][0].update(model=["gelu-4l"])), ["model = ['gelu-4l'] must be a non-empty string"]),
    "claims.yaml planted_checks a string": ("traceback", yaml_edit("paper/claims.yaml", lambda r: r.update(planted_checks="x")), ["paper/claims.yaml: planted_checks must be a list"]),
    "claims.yaml a field missing": ("traceback", write("paper/claims.yaml", "claims:\n  - {id: a, claim: b}\n"), ["paper/claims.yaml: claim 'a' lacks the field `section`"]),
    "claims.yaml unknown key in a claim": ("silent", yaml_edit("paper/claims.yaml", lambda r: r["claims"][0].update(paper_vaule=0.0)), ["paper/claims.yaml: claim 'writer_absent_before': paper_vaule is not allowed: unknown key; the known keys are id, claim, section, figure, source, model, paper_value, metric, tolerance, tolerance_reason, rounding, check"]),
    "claims.yaml tolerance_reason a number": ("silent", yaml_edit("paper/claims.yaml", lambda r: r["claims"][0].update(tolerance_reason=5)), ["paper/claims.yaml: claim 'writer_absent_before': tolerance_reason = 5 must be a non-empty string"]),
    "claims.yaml check margin a string": ("silent", yaml_edit("paper/claims.yaml", lambda r: r["claims"][5]["check"]["less_than"].update(margin="0.1")), ["paper/claims.yaml: claim 'later_layers_erase_too': check.less_than.margin = '0.1' must be a number in (-inf, inf)"]),
    "claims.yaml for_each var a list": ("silent", yaml_edit("paper/claims.yaml", lambda r: r["planted_checks"][3]["for_each"].update(var=["h"])), ["paper/claims.yaml: planted check 'planted_eraser_median': for_each.var = ['h'] must be a non-empty string"]),
    "claims.yaml planted tolerance below its bound": ("message", yaml_edit("paper/claims.yaml", lambda r: r["planted_checks"][3]["tolerance"].update(abs=-0.03)), ["paper/claims.yaml: planted check 'planted_eraser_median': tolerance.abs = -0.03 must be a positive number"]),
    "dvc.lock syntax": ("message", write("dvc.lock", "schema: '2.0'\nstages: {\n"), ["dvc.lock is not valid YAML at line 3, column 1"]),
    "claims.yaml duplicate key": ("message", write("paper/claims.yaml", "claims: []\npaper: {}\nclaims: []\n"), ["paper/claims.yaml is not valid YAML at line 3, column 1: key 'claims' appears twice"]),
}

PAPER_FILES = {
    "verification.json not JSON": ("traceback", write("paper/verification.json", "{]"), ["paper/verification.json is not valid JSON at line 1, column 2"]),
    "verification.json without status": ("traceback", json_edit("paper/verification.json", lambda d: d["claims"][0].pop("status") and None), ["paper/verification.json: claims[0].status is missing"]),
    "verification.json unknown status": ("silent", json_edit("paper/verification.json", lambda d: d["claims"][0].update(status="MAYBE")), ["paper/verification.json: claims[0].status = 'MAYBE' is not allowed: must be one of PASS, FAIL, NOT RUN"]),
    "a metric a list (paper)": ("traceback", write("metrics/fig1_resid.json", "[]"), ["metrics/fig1_resid.json holds a list, not a JSON object of metrics"]),
    "template not UTF-8": ("traceback", write("paper/template.md", b"# \xff\n"), ["paper/template.md is not UTF-8 text (byte 2)"]),
    "template absent": ("traceback", remove("paper/template.md"), ["paper/template.md not found"]),
    "tokens.npy garbage (paper)": ("traceback", write(TOK_NPY, b"garbage"), [f"{TOK_NPY} is corrupt"]),
    "tokens.json not JSON (paper)": ("traceback", write(TOK_JSON, "{"), [f"{TOK_JSON} is not valid JSON"]),
}

AUDIT = {  # stage dla_audit: every case stops before the model loads
    "ablation": ("silent", param("audit.ablation", "half"), ["audit.ablation = 'half' is not allowed: must be one of zero, mean, resample"]),
    "direction": ("silent", param("audit.direction", "pair"), ["audit.direction = 'pair' is not allowed: must be one of next_token, top2"]),
    "top_fraction 0": ("silent", param("audit.top_fraction", 0), ["audit.top_fraction = 0 is not allowed: must be a number in (0, 1]"]),
    "top_fraction above 1": ("silent", param("audit.top_fraction", 1.5), ["audit.top_fraction = 1.5 is not allowed"]),
    "n_prompts 0": ("traceback", param("audit.n_prompts", 0), ["audit.n_prompts = 0 is not allowed: must be an integer from 1 to"]),
    "resample of one prompt": ("silent", lambda root: (param("audit.ablation", "resample")(root), param("audit.n_prompts", 1)(root)), ["audit.n_prompts = 1 is not allowed with ablation resample"]),
    "seed negative": ("traceback", param("audit.seed", -1), ["audit.seed = -1 is not allowed"]),
    "discovery writers a string": ("traceback", json_edit("metrics/discovery.json", lambda d: d.update(writers="x")), ["metrics/discovery.json has no readable writers list"]),
}

ENVIRONMENT = {  # a file where the output folder should be (the tmpfs faults are in test_faults.py)
    "figures is a file": ("traceback", write("figures", "not a folder"), ["cannot write figures/fig1_resid.png: File exists (EEXIST)"]),
}

# ---- issue 21: every file a stage reads, every param in any mode, YAML as DVC reads it --------------------------
# Classes: `boundary` (a hand-off file between stages damaged, of the wrong type or shape, non-finite),
# `yaml` (what the YAML reader must refuse before the parser crashes or misreads), `mode` (a param malformed
# though the current mode does not use it, or one the machine cannot honour), `degenerate` (data a statistic
# cannot use). Documented nulls (not errors) are tested below the cases.

def atlas(change):
    def edit(root: Path):
        with np.load(root / ATLAS) as f:
            arrays = dict(f)
        change(arrays)
        with open(root / ATLAS, "wb") as f:
            np.savez(f, **arrays)
    return edit


def truncate(rel: str, keep: float = 0.5):
    def edit(root: Path):
        data = (root / rel).read_bytes()
        (root / rel).write_bytes(data[: int(len(data) * keep)])
    return edit


def sweep(change, model: str = MODEL):
    return json_edit(f"sweep/{model}.json", change)


def as_npz(rel: str):
    """The .npy file replaced by an .npz archive holding it (np.load then returns an NpzFile)."""
    def edit(root: Path):
        array = np.load(root / rel)
        with open(root / rel, "wb") as f:
            np.savez(f, tokens=array)
    return edit


def raw_text(rel: str, old: str, new: str):
    def edit(root: Path):
        text = (root / rel).read_text()
        assert old in text, old
        (root / rel).write_text(text.replace(old, new, 1))
    return edit


DISC, FIG5_JSON = "metrics/discovery.json", "metrics/fig5_adversarial.json"
P1 = "prompts.p1"
DISCOVERY_FIGS_FILES = {
    "atlas truncated": ("boundary", truncate(ATLAS), [f"{ATLAS} is unreadable (BadZipFile"]),
    "atlas 0 bytes": ("boundary", write(ATLAS, b""), [f"{ATLAS} is unreadable (EOFError"]),
    "atlas garbage": ("boundary", write(ATLAS, b"PK\x03\x04 not a zip"), [f"{ATLAS} is unreadable"]),
    "atlas a single .npy": ("boundary", lambda root: np.save(open(root / ATLAS, "wb"), np.zeros(3)), [f"{ATLAS} is a single .npy array"]),
    "atlas lacks matrix": ("boundary", atlas(lambda a: a.pop("matrix")), [f"{ATLAS}: lacks matrix"]),
    "atlas matrix shape": ("boundary", atlas(lambda a: a.update(matrix=a["matrix"][:, :-1])), [f"{ATLAS}: matrix is float64 (27, 35), expected floats (writers, components) = (27, 36)"]),
    "atlas matrix of strings": ("boundary", atlas(lambda a: a.update(matrix=a["matrix"].astype(str))), [f"{ATLAS}: matrix is <U"]),
    "atlas all NaN": ("degenerate", atlas(lambda a: a["matrix"].fill(np.nan)), [f"{ATLAS}: matrix holds no finite value"]),
    "atlas inf": ("boundary", atlas(lambda a: a["matrix"].__setitem__((0, 9), np.inf)), [f"{ATLAS}: matrix holds inf values"]),
    "atlas shape negative": ("boundary", atlas(lambda a: a.update(shape=np.array([-4, 8]))), [f"{ATLAS}: shape must be two positive integers (n_layers, n_heads), not [-4, 8]"]),
    "atlas writers numbers": ("boundary", atlas(lambda a: a.update(writers=np.arange(27))), [f"{ATLAS}: writers must be a non-empty list of names"]),
    "discovery.json without ranking": ("boundary", json_edit(DISC, lambda d: d.pop("ranking") and None), [f"{DISC}: ranking is missing"]),
    "discovery.json ranking empty": ("degenerate", json_edit(DISC, lambda d: d.update(ranking=[])), [f"{DISC}: ranking = [] is not allowed"]),
    "discovery.json erasure a string": ("boundary", json_edit(DISC, lambda d: d["ranking"][0].update(erasure="0.86")), [f"{DISC}: ranking[0].erasure = '0.86' is not allowed"]),
    "discovery.json erasure NaN": ("boundary", json_edit(DISC, lambda d: d["ranking"][1].update(erasure=float("nan"))), [f"{DISC} holds NaN (not JSON: an undefined statistic is null)"]),
    "discovery.json excluded_by a string": ("boundary", json_edit(DISC, lambda d: d["ranking"][0].update(excluded_by="none")), [f"{DISC}: ranking[0].excluded_by = 'none' is not allowed"]),
    "discovery.json window of one": ("boundary", json_edit(DISC, lambda d: d["writers"][0].update(window=["resid_post0"])), [f"{DISC}: writers[0].window = ['resid_post0'] is not allowed: must have at least 2 entries"]),
    "discovery.json persistence a list": ("boundary", json_edit(DISC, lambda d: d["writers"][0].update(persistence=[1.0])), [f"{DISC}: writers[0].persistence = [1.0] is not allowed: must be a mapping"]),
    "discovery.json n_prompts 0": ("boundary", json_edit(DISC, lambda d: d.update(n_prompts=0)), [f"{DISC}: n_prompts = 0 is not allowed"]),
    "discovery.json of another model": ("boundary", json_edit(DISC, lambda d: d.update(model="gelu-4l")), [f"{DISC} is of model 'gelu-4l', not 'planted-4l'"]),
    "discovery.json a number": ("boundary", write(DISC, "3"), [f"{DISC} holds 3: must be a mapping of"]),
}

FIG5_FILES = {
    "fig5 logit_diff a string": ("boundary", json_edit(FIG5_JSON, lambda d: d["prompts"]["p1"].update(logit_diff="1.45")), [f"{FIG5_JSON}: {P1}.logit_diff = '1.45' is not allowed"]),
    "fig5 clean DLA null": ("boundary", json_edit(FIG5_JSON, lambda d: d["prompts"]["p2"]["heads"]["L0H2"].update(clean=None)), [f"{FIG5_JSON}: prompts.p2.heads.L0H2.clean = None is not allowed"]),
    "fig5 Infinity": ("boundary", raw_text(FIG5_JSON, '"clean": ', '"clean": Infinity, "was": '), [f"{FIG5_JSON} holds Infinity (not JSON"]),
    "fig5 resampled lacks q25": ("boundary", json_edit(FIG5_JSON, lambda d: d["prompts"]["p1"]["heads"]["L0H2"]["resampled"].pop("q25") and None), [f"{FIG5_JSON}: {P1}.heads.L0H2.resampled.q25 is missing"]),
    "fig5 comparison head not computed": ("boundary", json_edit(FIG5_JSON, lambda d: d["prompts"]["p1"].update(comparison_head="L2H6")), [f"{FIG5_JSON}: {P1}.comparison_head = 'L2H6' is not allowed: it is not one of its heads ['L0H2', 'L3H1']"]),
    "fig5 no prompts": ("degenerate", json_edit(FIG5_JSON, lambda d: d.update(prompts={})), [f"{FIG5_JSON}: prompts = {{}} is not allowed: must have at least 1 entry"]),
    "fig5 top2 of three": ("boundary", json_edit(FIG5_JSON, lambda d: d["prompts"]["p3"].update(top2=["a", "b", "c"])), [f"{FIG5_JSON}: prompts.p3.top2 = ['a', 'b', 'c'] is not allowed: must have at most 2 entries"]),
    "fig5 direction unknown": ("boundary", json_edit(FIG5_JSON, lambda d: d["prompts"]["p4"].update(direction="both")), [f"{FIG5_JSON}: prompts.p4.direction = 'both' is not allowed"]),
    "fig5 n_resample 0": ("degenerate", json_edit(FIG5_JSON, lambda d: d["prompts"]["p4"].update(n_resample=0)), [f"{FIG5_JSON}: prompts.p4.n_resample = 0 is not allowed"]),
    "fig5 heads a list": ("boundary", json_edit(FIG5_JSON, lambda d: d["prompts"]["p1"].update(heads=[1])), [f"{FIG5_JSON}: {P1}.heads = [1] is not allowed: must be a mapping"]),
    "fig5 truncated": ("boundary", truncate(FIG5_JSON), [f"{FIG5_JSON} is not valid JSON at line"]),
}

SW = f"sweep/{MODEL}.json"
SWEEP_FILES = {
    "sweep without discovery": ("boundary", sweep(lambda d: d.pop("discovery") and None), [f"{SW}: discovery is missing"]),
    "sweep top_frequency a string": ("boundary", sweep(lambda d: d["discovery"]["writers"][0].update(top_frequency="high")), [f"{SW}: discovery.writers[0].top_frequency = 'high' is not allowed"]),
    "sweep interval a list": ("boundary", sweep(lambda d: d["discovery"]["writers"][0].update(erasure_low=[0.1, 0.2])), [f"{SW}: discovery.writers[0].erasure_low = [0.1, 0.2] is not allowed"]),
    "sweep from an older discovery": ("boundary", sweep(lambda d: d["discovery"].pop("selection_frequency") and None), [f"{SW}: discovery.selection_frequency is missing: the record is from an older discovery"]),
    "sweep level beyond 1": ("boundary", sweep(lambda d: d["discovery"]["bootstrap"].update(level=95)), [f"{SW}: discovery.bootstrap.level = 95 is not allowed"]),
    "sweep erased_by a list": ("boundary", sweep(lambda d: d["discovery"]["writers"][0].update(erased_by=[1])), [f"{SW}: discovery.writers[0].erased_by = [1] is not allowed: must be a mapping"]),
    "sweep model a number": ("boundary", sweep(lambda d: d.update(model=4)), [f"{SW}: model = 4 is not allowed"]),
    "sweep a list": ("boundary", write(SW, "[]"), [f"{SW} holds []: must be a mapping of"]),
    "sweep NaN erasure": ("boundary", sweep(lambda d: d["discovery"]["writers"][0].update(erasure=float("nan"))), [f"{SW} holds NaN (not JSON"]),
    "sweep not UTF-8": ("boundary", write(SW, b'{"model": "\xff"}'), [f"{SW} is not UTF-8 text"]),
    "sweep model twice": ("boundary", sweep(lambda d: d.update(model="planted-4l"), "smollm2-135m"), ["sweep/smollm2-135m.json holds 'planted-4l' again"]),
    "sweep empty": ("degenerate", lambda root: [p.unlink() for p in (root / "sweep").glob("*.json")], ["sweep holds none of compare.models (planted-4l, smollm2-135m, gemma3-270m)"]),
    "sweep of other models only": ("degenerate", both(remove("sweep/planted-4l.json"), remove("sweep/gemma3-270m.json"), param("compare.models", ["planted-4l", "gemma3-270m"])), ["sweep holds none of compare.models (planted-4l, gemma3-270m)"]),
    "sweep writers a mapping": ("boundary", sweep(lambda d: d["discovery"].update(writers={"a": 1})), [f"{SW}: discovery.writers = {{'a': 1}} is not allowed: must be a list"]),
}

OTHER_HANDOFFS = {  # (stage, class, edit, expected)
    "tokens.npy is an .npz": ("activations", "boundary", as_npz(TOK_NPY), [f"{TOK_NPY} is an .npz archive, not one .npy array"]),
    "table is an .npz": ("fig1_resid", "boundary", as_npz("data/activations/resid_pr.npy"), ["data/activations/resid_pr.npy is an .npz archive"]),
    "table 0 bytes": ("fig2_components", "boundary", write("data/activations/component_pr.npy", b""), ["data/activations/component_pr.npy is corrupt"]),
    "points truncated": ("fig4_dla", "boundary", truncate(PTS), [f"{PTS} is unreadable"]),
    "a metric holds NaN (verify)": ("verify", "boundary", raw_text("metrics/fig4_dla.json", '"r": ', '"r": NaN, "was": '), ["metrics/fig4_dla.json holds NaN (not JSON"]),
    "a metric nested too deep (verify)": ("verify", "boundary", write("metrics/fig2_components.json", "[" * 100_000 + "]" * 100_000), ["metrics/fig2_components.json is nested too deep"]),
    "figure 0 bytes (paper)": ("build_paper", "boundary", write("figures/fig1_resid.png", b""), ["figures/fig1_resid.png is not a PNG (0 bytes)"]),
    "figure not a PNG (paper)": ("build_paper", "boundary", write("figures/fig2_components.png", b"<svg></svg>"), ["figures/fig2_components.png is not a PNG (11 bytes"]),
    "template syntax (paper)": ("build_paper", "boundary", raw_text("paper/template.md", "## Summary", "## Summary {% if %}"), ["paper/template.md is not a valid template at line"]),
    "template unknown filter (paper)": ("build_paper", "boundary", raw_text("paper/template.md", "## Summary", "## Summary {{ model | shout }}"), ["paper/template.md is not a valid template at line", "shout"]),
    "template unclosed block (paper)": ("build_paper", "boundary", raw_text("paper/template.md", "## Summary", "## Summary {% for x in y %}"), ["paper/template.md is not a valid template at line"]),
}

DEEP = "model: planted-4l\nx: " + "[" * 100_000 + "]" * 100_000 + "\n"
YAML_FILES = {
    "deep nesting": ("yaml", write("params.yaml", DEEP), ["params.yaml is nested more than 32 levels deep at line 2, column 35"]),
    "deep block nesting": ("yaml", write("params.yaml", "model: planted-4l\n" + "".join(f"{' ' * i}k{i}:\n" for i in range(40)) + " " * 40 + "v: 1\n"), ["params.yaml is nested more than 32 levels deep at line 34, column 33"]),
    "5000-digit integer": ("yaml", param(f"{P}.seed", int("9" * 4000)), ["params.yaml holds a plain value of 4000 characters"]),
    "huge file": ("yaml", write("params.yaml", "model: planted-4l\n#" + "x" * (1 << 20) + "\n"), ["params.yaml is 1048596 characters: the limit is 1048576"]),
    "python tag": ("yaml", write("params.yaml", "model: !!python/object/apply:os.system [echo pwned]\n"), ["params.yaml is not valid YAML at line 1, column 8: could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'"]),
    "merge of a scalar": ("yaml", write("params.yaml", "a: &a 1\nmodel:\n  <<: *a\n"), ["params.yaml is not valid YAML"]),
    "merge brings an unknown key": ("yaml", raw_text("params.yaml", "fig1:", "base: &b {typo: 1}\nfig1:\n  <<: *b"), ["base is not allowed: unknown key"]),
    "merge into a section, typo inside": ("yaml", raw_text("params.yaml", "fig3:", "fig3_base: &f3 {dpi: 120, bandz: []}\nfig3:\n  <<: *f3"), ["fig3_base is not allowed: unknown key"]),
    "YAML 1.1 yes is a string": ("yaml", raw_text("params.yaml", "include_bos: true", "include_bos: yes"), ["discovery.include_bos = 'yes' is not allowed: must be true or false"]),
    "sexagesimal is a string": ("yaml", raw_text("params.yaml", "seed: 42", "seed: 1:30"), ["fig5.seed = '1:30' is not allowed"]),
    "date is not a seed": ("yaml", raw_text("params.yaml", "seed: 42", "seed: 2024-01-01"), ["fig5.seed = datetime.date(2024, 1, 1) is not allowed"]),
    "duplicate key in a nested mapping": ("yaml", raw_text("params.yaml", "  n_resample: 300", "  n_resample: 300\n  n_resample: 301"), ["params.yaml is not valid YAML at line ", ", column 3: key 'n_resample' appears twice"]),
    "billion laughs under an unknown key": ("yaml", write("params.yaml", "model: planted-4l\na: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))), ["a is not allowed: unknown key"]),
}

MODE_PARAMS = {  # (stage, edit, expected)
    "float16 on the CPU": ("prompts", both(param("compute.device", "cpu"), param("compute.dtype", "float16")), ["compute.dtype = 'float16' is not allowed on the CPU: it runs about 17x slower than float32"]),
    "a model name with markup": ("fig1_resid", lambda root: (param("models.<b>x</b>", repo_params(MODEL)["models"][MODEL])(root)), ["models.<b>x</b> is not allowed: a model's name is letters, digits"]),
    "another model's writer beyond it": ("fig1_resid", param("models.smollm2-135m.writer", "L40H0"), ["models.smollm2-135m.writer = 'L40H0' is not allowed"]),
    "another model's prompts too long": ("fig1_resid", param("models.gemma3-270m.prompts.seq_len", 100_000), ["models.gemma3-270m.prompts.seq_len = 100000 is not allowed"]),
    "unused discovery param": ("fig1_resid", param("discovery.hist_bins", 3), ["discovery.hist_bins = 3 is not allowed"]),
    "unused compare param": ("fig1_resid", param("compare.gelu4l_like.min_head_share", 1.5), ["compare.gelu4l_like.min_head_share = 1.5 is not allowed"]),
    "unused fig5 pair, direction top2": ("fig1_resid", param("fig5.prompts.p3.pair", [" __", " __"]), ["fig5.prompts.p3.pair = [' __', ' __'] is not allowed: must be two different tokens"]),
}

CASES = (
    [("params.yaml: " + k, "fig1_resid", *v) for k, v in PARAMS_FILE.items()]
    + [("param: " + k, "fig1_resid", *v) for k, v in PARAM_VALUES.items()]
    + [(f"activations: {k}", "activations", *v) for k, v in TOKEN_FILES.items()]
    + [(f"fig1_resid: {k}", "fig1_resid", *v) for k, v in ACTIVATION_FILES.items()]
    + [(f"{stage}: {k}", stage, *ACTIVATION_FILES[k]) for stage in ("fig2_components", "fig3_heads")
       for k in ("meta.json without n_prompts", "table shape", "one NaN", "all NaN")]
    + [(f"fig4_dla: {k}", "fig4_dla", *v) for k, v in {**DLA_FILES, **{
        k: v for k, v in ACTIVATION_FILES.items() if k.startswith("meta.json")}}.items()]
    + [(f"fig4_dla: {k}", "fig4_dla", *v) for k, v in ROLE_FILES.items()]
    + [(f"verify: {k}", "verify", *v) for k, v in REPORT_FILES.items()]
    + [(f"paper: {k}", "build_paper", *v) for k, v in PAPER_FILES.items()]
    + [(f"fig1_resid: {k}", "fig1_resid", *v) for k, v in ENVIRONMENT.items()]
    + [(f"dla_audit: {k}", "dla_audit", *v) for k, v in AUDIT.items()]
)
CASES_21 = (
    [(f"discovery_figs: {k}", "discovery_figs", *v) for k, v in DISCOVERY_FIGS_FILES.items()]
    + [(f"fig5_adversarial: {k}", "fig5_adversarial", *v) for k, v in FIG5_FILES.items()]
    + [(f"compare: {k}", "compare", *v) for k, v in SWEEP_FILES.items()]
    + [(f"{stage}: {k}", stage, cls, edit, expected) for k, (stage, cls, edit, expected) in OTHER_HANDOFFS.items()]
    + [(f"params.yaml: {k}", "fig1_resid", *v) for k, v in YAML_FILES.items()]
    + [(f"{stage}: {k}", stage, "mode", edit, expected) for k, (stage, edit, expected) in MODE_PARAMS.items()]
)


@pytest.mark.parametrize("name, stage, cls, edit, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_leaves_the_tree_as_it_was(work, monkeypatch, capsys, name, stage, cls, edit,
                                                            expected):
    assert_refused(work, monkeypatch, capsys, stage, edit, expected)


def assert_refused(work, monkeypatch, capsys, stage, edit, expected) -> None:
    """The edited input makes the stage exit 2 with one line naming it, and the tree is as it was."""
    edit(work)
    before = snapshot(work)
    code, stderr = run_here(stage, work, monkeypatch, capsys)
    assert_one_line(code, stderr, expected)
    assert snapshot(work) == before


@pytest.mark.parametrize("name, stage, cls, edit, expected", CASES_21, ids=[c[0] for c in CASES_21])
def test_every_file_and_param_is_checked_where_it_is_read(work, monkeypatch, capsys, name, stage, cls, edit,
                                                          expected):
    """Issue 21's cases: exit 2, one line naming the file or param, no traceback, the tree as it was."""
    assert_refused(work, monkeypatch, capsys, stage, edit, expected)


def test_issue_21_cases_by_class():
    counts = Counter(case[2] for case in CASES_21)
    print(f"issue-21 cases by class: {dict(counts)} (total {len(CASES_21)})")
    assert set(counts) == {"boundary", "yaml", "mode", "degenerate"}
    assert counts["boundary"] >= 30 and counts["yaml"] >= 10


@pytest.mark.parametrize("stage, outputs", [
    ("fig1_resid", ["metrics/fig1_resid.json", "figures/fig1_resid.png"]),
    ("verify", ["paper/verification.json", "paper/verification.md"]),
])
def test_the_unedited_inputs_run(work, monkeypatch, capsys, stage, outputs):
    """The control: the same stages on the unedited scratch copy succeed, so each case fails for its one edit."""
    for rel in outputs:
        (work / rel).unlink(missing_ok=True)
    code, stderr = run_here(stage, work, monkeypatch, capsys)
    assert code == 0, stderr
    assert all((work / rel).is_file() for rel in outputs)


def test_a_killed_runs_temp_files_are_removed_by_the_next_run(work, monkeypatch, capsys):
    """A SIGKILLed stage leaves `.<output>.tmp` (a file, or a folder for a folder output); its next run removes
    them, so the tree ends as a clean run leaves it (the kill itself: test_faults.py)."""
    write("figures/.fig1_resid.png.tmp", b"half a png")(work)
    write("metrics/.fig1_resid.json.tmp/part", "{")(work)
    code, stderr = run_here("fig1_resid", work, monkeypatch, capsys)
    assert code == 0, stderr
    assert not list(work.rglob("*.tmp")) and not list(work.rglob("*.tmp/*"))


def test_the_suite_covers_each_class_with_many_cases():
    counts = Counter(case[2] for case in CASES)
    print(f"bad-input cases by class: {dict(counts)} (total {len(CASES)})")
    assert set(counts) == {"traceback", "silent", "message"}
    assert min(counts.values()) >= 8, counts


@pytest.mark.parametrize("stage, edit, expected", [
    ("prompts", write("params.yaml", b"model: planted-4l\nmodels: \xff\xfe\n"), "params.yaml is not UTF-8 text (byte 26)"),
    ("fig1_resid", param("paper.regression.abs", "no"), "paper.regression.abs = 'no' is not allowed: must be a number from 0 to 1"),
    ("fig2_components", table("component_pr.npy", at((3, 7, 0, 20), np.inf)), "data/activations/component_pr.npy holds 1 NaN/inf values"),
    pytest.param("activations", param("compute.device", "cuda"),
                 "compute.device = 'cuda' is not allowed on this machine: torch ", marks=NO_CUDA),
    pytest.param("prompts", param("compute.device", "cuda"),
                 "compute.device = 'cuda' is not allowed on this machine: torch ", marks=NO_CUDA),
])
def test_a_real_process_exits_2_with_one_line(work, stage, edit, expected):
    """The same behaviour from the interpreter itself: exit status 2, one stderr line, nothing written."""
    edit(work)
    before = snapshot(work)
    result = subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=work, capture_output=True, text=True,
                            env=CHECKOUT_ENV, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [f"error: {expected}"] or (
        len(result.stderr.splitlines()) == 1 and result.stderr.startswith(f"error: {expected}")), result.stderr
    assert snapshot(work) == before


@pytest.mark.parametrize("offline_flag", [None, "1"])
@pytest.mark.parametrize("model", ["gelu-4l", pytest.param("gpt2-small", marks=pytest.mark.slow)])  # same path
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


# ---- degenerate statistics: documented nulls (docs/methods.md, "Undefined statistics"), never NaN, never a crash ----

def read_output(root: Path, rel: str) -> str:
    text = (root / rel).read_text()
    assert "NaN" not in text and "Infinity" not in text and "nan" not in text.lower().split(), rel
    return text


def test_a_fit_with_constant_x_is_a_documented_null(work, monkeypatch, capsys):
    """Every writer DLA equal (x constant): no line is defined; scipy's ValueError used to end the stage."""
    points(lambda a: a["writer"].fill(0.5))(work)
    code, stderr = run_here("fig4_dla", work, monkeypatch, capsys)
    assert code == 0, stderr
    m = json.loads(read_output(work, "metrics/fig4_dla.json"))
    for fit in (m["paper"], m["full_erasers"]):
        assert fit["r"] is None and fit["slope"] is None and fit["intercept"] is None
        assert fit["undefined"] == "every x equals 0.5: no line through the points"
        assert fit["r_low"] is None and fit["slope_high"] is None  # every bootstrap draw undefined too
    read_output(work, "plots/fig4_dla.csv")
    assert (work / "figures/fig4_dla.png").read_bytes().startswith(b"\x89PNG")


def test_a_fit_with_constant_y_has_slope_0_and_no_r(work, monkeypatch, capsys):
    """The erasers' V-composition part is 0 at every point: flat line, r undefined (it was written as NaN)."""
    points(lambda a: a["vcomp"].fill(0.0))(work)
    code, stderr = run_here("fig4_dla", work, monkeypatch, capsys)
    assert code == 0, stderr
    paper = json.loads(read_output(work, "metrics/fig4_dla.json"))["paper"]
    assert paper["r"] is None and paper["slope"] == 0.0 and paper["intercept"] == 0.0
    assert paper["undefined"] == "every y equals 0: r is undefined (no variation to correlate)"
    assert paper["r_low"] is None and paper["slope_low"] == paper["slope_high"] == 0.0


def test_a_share_without_a_drop_to_undo_is_a_documented_null(work, monkeypatch, capsys):
    """Fig 1's V-composition share divides by the layer's drop in PR: no drop (entering = clean after) used to
    raise ZeroDivisionError; now the share and its interval are null, with the reason."""
    names = checkpoint_names(4)
    def same_median(a):
        a = a.copy()
        a[:, :, 0, names.index("resid_post1")] = a[:, :, 0, names.index("resid_mid2")]
        return a
    table("resid_pr.npy", same_median)(work)
    code, stderr = run_here("fig1_resid", work, monkeypatch, capsys)
    assert code == 0, stderr
    share = json.loads(read_output(work, "metrics/fig1_resid.json"))["vcomp_share"]
    assert share["all"] is None and share["all_low"] is None and share["all_high"] is None
    assert "resid_post1 and resid_mid2 (clean) have the same median PR" in share["undefined"]["all"]


def test_a_writer_without_a_finite_score_is_listed_with_an_empty_cell(work, monkeypatch, capsys):
    """Discovery writes null for a writer whose window has no finite median: the ranking's CSV shows an empty
    cell (DVC's plots skip it), never NaN."""
    json_edit(DISC, lambda d: d["ranking"][1].update(erasure=None))(work)
    code, stderr = run_here("discovery_figs", work, monkeypatch, capsys)
    assert code == 0, stderr
    rows = read_output(work, "plots/discovery_writers.csv").splitlines()
    assert rows[2].split(",")[1] == "", rows[2]


def test_a_fortran_ordered_tokens_file_reads_as_the_same_ids(work):
    """np.save of a Fortran-ordered array (another tool's, or a transpose) holds the same ids and the same sha256:
    read row-major, not a traceback."""
    from erasure.analysis.prompt_files import load_prompts
    from erasure.params.load import load_params

    path = work / TOK_NPY
    ids = np.load(path)
    np.save(path, np.asfortranarray(ids))
    assert np.load(path).flags.f_contiguous and not np.load(path).flags.c_contiguous
    tokens, _ = load_prompts(load_params(work / "params.yaml"), work / "data/prompts")
    assert tokens.is_contiguous() and np.array_equal(tokens.numpy(), ids)


def test_data_text_with_dollars_is_drawn_as_text(work, monkeypatch, capsys):
    """A prompt text or token holding `$...$` is plain text in a figure: matplotlib's mathtext parser used to read
    it, and `$\\frac$` ended the stage with its ValueError."""
    both(json_edit(FIG5_JSON, lambda d: d["prompts"]["p1"].update(text="It costs $\\frac$ here")),
         json_edit(FIG5_JSON, lambda d: d["prompts"]["p2"].update(top2=["$\\", "$x^$"])))(work)
    code, stderr = run_here("fig5_adversarial", work, monkeypatch, capsys)
    assert code == 0, stderr
    assert (work / "figures/fig5_adversarial.png").read_bytes().startswith(b"\x89PNG")
