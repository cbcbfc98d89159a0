"""Real Hugging Face clients against the stand-in Hub (tests/hub_standin.py) serving build_hub_fixtures' repos.

huggingface_hub reads HF_ENDPOINT / HF_HOME / HF_HUB_OFFLINE when it is imported, so every client runs in a
subprocess with a temporary HF_HOME. Expected values come from the fixture files themselves (read with hashlib,
pyarrow, torch, tokenizers), never from the client under test. Every server is stopped by its context manager
or killed by its own PID.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from scripts.build_hub_fixtures import (
    GELU4L_DATASETS,
    GELU4L_REPO,
    GPT2_REPO,
    SEQ_LEN,
    TOKENIZER_REPO,
    build_fixtures,
    write_token_shards,
)
from tests.hub_standin import Request, scan_repo, serve

pytestmark = pytest.mark.slow  # test infrastructure of the slow end-to-end gelu-4l runs: about 11 s of CPU

REPO_ROOT = Path(__file__).resolve().parents[2]
C4_REPO, CODE_REPO = GELU4L_DATASETS


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hub") / "root"
    build_fixtures(root)
    return root


def client(code: str, url: str, home: Path, offline: bool = False) -> object:
    """Run client code in a fresh interpreter pointed at the stand-in; returns the JSON its last line prints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    env.update(HF_ENDPOINT=url, HF_HOME=str(home), HF_HUB_DISABLE_PROGRESS_BARS="1")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    prelude = "import json\n"
    proc = subprocess.run([sys.executable, "-c", prelude + code], env=env, capture_output=True, text=True, check=False,
                          timeout=300, cwd=home.parent)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def repo_files(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_goes_through_the_lfs_redirect_and_is_cached(hub_root, tmp_path):
    folder = hub_root / "models" / GELU4L_REPO
    log: list[Request] = []
    code = f"""
from huggingface_hub import hf_hub_download
print(json.dumps([hf_hub_download({GELU4L_REPO!r}, f) for f in ("config.json", "model_final.pth")]))
"""
    with serve(hub_root, log=log) as url:
        paths = client(code, url, tmp_path)
    for path, name in zip(paths, ("config.json", "model_final.pth")):
        assert Path(path).read_bytes() == (folder / name).read_bytes()
    # the weights are an LFS file: a 302 to the CDN origin, which serves the bytes by their sha256
    assert ("hub", "HEAD", f"/{GELU4L_REPO}/resolve/main/model_final.pth", 302) in log
    assert ("cdn", "GET", f"/lfs/{sha256(folder / 'model_final.pth')}", 200) in log
    # the server is stopped: offline, the same files come from the cache
    offline = f"""
from huggingface_hub import hf_hub_download, try_to_load_from_cache
print(json.dumps([[hf_hub_download({GELU4L_REPO!r}, f), try_to_load_from_cache({GELU4L_REPO!r}, f)]
                  for f in ("config.json", "model_final.pth")]))
"""
    assert client(offline, url, tmp_path, offline=True) == [[p, p] for p in paths]


def test_missing_file_is_cached_as_missing(hub_root, tmp_path):
    code = f"""
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import RemoteEntryNotFoundError
try:
    hf_hub_download({TOKENIZER_REPO!r}, "config.json")
    print(json.dumps("downloaded"))
except RemoteEntryNotFoundError:
    print(json.dumps("EntryNotFound"))
"""
    with serve(hub_root) as url:
        assert client(code, url, tmp_path) == "EntryNotFound"
    offline = f"""
from huggingface_hub import try_to_load_from_cache, _CACHED_NO_EXIST
print(json.dumps([try_to_load_from_cache({TOKENIZER_REPO!r}, f) is _CACHED_NO_EXIST
                  for f in ("config.json", "added_tokens.json")]))
"""
    # config.json was answered 404 + X-Repo-Commit (marker cached); added_tokens.json was never asked for
    assert client(offline, url, tmp_path, offline=True) == [True, False]


def test_unknown_repo_and_revision_raise_the_clients_errors(hub_root, tmp_path):
    code = f"""
from huggingface_hub import HfApi, hf_hub_download
api = HfApi()
calls = {{
    "download": lambda: hf_hub_download("nobody/nothing", "config.json"),
    "model_info": lambda: api.model_info("nobody/nothing"),
    "model_as_dataset": lambda: api.dataset_info({GELU4L_REPO!r}),
    "bad_revision": lambda: api.model_info({GELU4L_REPO!r}, revision="0" * 40),
    "download_bad_revision": lambda: hf_hub_download({GELU4L_REPO!r}, "config.json", revision="v9"),
}}
out = {{}}
for name, call in calls.items():
    try:
        call()
        out[name] = None
    except Exception as err:
        out[name] = type(err).__name__
print(json.dumps(out))
"""
    with serve(hub_root) as url:
        out = client(code, url, tmp_path)
    assert out == {"download": "RepositoryNotFoundError", "model_info": "RepositoryNotFoundError",
                   "model_as_dataset": "RepositoryNotFoundError", "bad_revision": "RevisionNotFoundError",
                   "download_bad_revision": "RevisionNotFoundError"}


def test_listings_info_paths_refs_and_ranged_reads(hub_root, tmp_path):
    model, data = hub_root / "models" / GELU4L_REPO, hub_root / "datasets" / C4_REPO
    shard = sorted((data / "data").iterdir())[2]
    code = f"""
from huggingface_hub import HfApi, HfFileSystem
api = HfApi()
def entry(e):
    return {{"kind": type(e).__name__, "path": e.path, "size": getattr(e, "size", None),
            "lfs": e.lfs["sha256"] if getattr(e, "lfs", None) else None,
            "commit": e.last_commit.oid if e.last_commit else None}}
info = api.repo_info({GELU4L_REPO!r})
at_sha = api.repo_info({GELU4L_REPO!r}, revision=info.sha, files_metadata=True)
data_info = api.dataset_info({C4_REPO!r})
with HfFileSystem().open("datasets/{C4_REPO}/data/{shard.name}", "rb") as f:
    f.seek(1000)
    chunk = f.read(100)
print(json.dumps({{
    "files": api.list_repo_files({GELU4L_REPO!r}),
    "tree": [entry(e) for e in api.list_repo_tree({GELU4L_REPO!r}, recursive=True)],
    "top": [entry(e) for e in api.list_repo_tree({C4_REPO!r}, repo_type="dataset")],
    "data": [entry(e) for e in api.list_repo_tree({C4_REPO!r}, "data", repo_type="dataset", expand=True)],
    "sha": info.sha, "sha_at_sha": at_sha.sha, "data_sha": data_info.sha,
    "siblings": [[s.rfilename, s.size, s.lfs.sha256 if s.lfs else None] for s in at_sha.siblings],
    "paths": [entry(e) for e in api.get_paths_info({GELU4L_REPO!r}, ["config.json", "checkpoints", "nope"])],
    "refs": [[r.name, r.target_commit] for r in api.list_repo_refs({GELU4L_REPO!r}).branches],
    "chunk": chunk.hex(),
}}))
"""
    log: list[Request] = []
    with serve(hub_root, log=log) as url:
        out = client(code, url, tmp_path)
    files = repo_files(model)
    lfs = {name: sha256(p) if name.endswith(".pth") else None for name, p in files.items()}
    assert out["files"] == list(files)
    assert [e for e in out["tree"] if e["kind"] == "RepoFile"] == [
        {"kind": "RepoFile", "path": n, "size": p.stat().st_size, "lfs": lfs[n], "commit": None}
        for n, p in files.items()]
    assert [e["path"] for e in out["tree"] if e["kind"] == "RepoFolder"] == ["checkpoints"]
    assert [e["path"] for e in out["top"]] == [".gitattributes", "README.md", "data"]
    assert [e["path"] for e in out["data"]] == [f"data/{p.name}" for p in sorted((data / "data").iterdir())]
    assert {e["commit"] for e in out["data"]} == {out["data_sha"]}  # expand=True: lastCommit, as datasets 2.14 needs
    assert re.fullmatch("[0-9a-f]{40}", out["sha"]) and out["sha_at_sha"] == out["sha"] != out["data_sha"]
    assert out["siblings"] == [[n, p.stat().st_size, lfs[n]] for n, p in files.items()]
    assert [(e["kind"], e["path"]) for e in out["paths"]] == [("RepoFile", "config.json"),
                                                              ("RepoFolder", "checkpoints")]
    assert out["refs"] == [["main", out["sha"]]]
    assert bytes.fromhex(out["chunk"]) == shard.read_bytes()[1000:1100]
    assert any(r.server == "cdn" and r.status == 206 for r in log)


def test_tree_listing_pages_like_the_hub(tmp_path):
    folder = tmp_path / "root" / "models" / "standin" / "many-files"
    folder.mkdir(parents=True)
    for i in range(120):
        (folder / f"f{i:03d}.txt").write_text(str(i))
    code = """
from huggingface_hub import HfApi
print(json.dumps([e.path for e in HfApi().list_repo_tree("standin/many-files", expand=True)]))
"""
    log: list[Request] = []
    with serve(tmp_path / "root", log=log) as url:
        paths = client(code, url, tmp_path)
    assert paths == sorted(p.name for p in folder.iterdir())
    # expand=True pages hold 50 entries on the Hub: 3 pages, the next ones found through the Link header
    assert len([r for r in log if "/tree/" in r.path]) == 3


def test_snapshot_download_then_offline(hub_root, tmp_path):
    code = f"""
from huggingface_hub import snapshot_download
print(json.dumps(snapshot_download({GELU4L_REPO!r})))
"""
    with serve(hub_root) as url:
        snapshot = Path(client(code, url, tmp_path))
    assert {n: p.read_bytes() for n, p in repo_files(snapshot).items()} == {
        n: p.read_bytes() for n, p in repo_files(hub_root / "models" / GELU4L_REPO).items()}
    assert client(code, url, tmp_path, offline=True) == str(snapshot)


def test_tokenizer_loads_with_bos_and_single_token_pair_words(hub_root, tmp_path):
    from tokenizers import Tokenizer

    fig5 = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["fig5"]["prompts"]
    words = [w for p in fig5.values() for w in p["pair"]]
    texts = ["It's in the cupboard, year 2023", "def f(x):\n    return x"]
    code = f"""
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained({TOKENIZER_REPO!r}, add_bos_token=True)
print(json.dumps({{
    "special": [tok.eos_token_id, tok.bos_token_id, tok.pad_token_id, tok.eos_token, tok.bos_token, tok.pad_token],
    "texts": [tok(t)["input_ids"] for t in {texts!r}],
    "words": [tok(w, add_special_tokens=False)["input_ids"] for w in {words!r}],
    "digits": tok("2023", add_special_tokens=False)["input_ids"],
    "size": len(tok),
}}))
"""
    with serve(hub_root) as url:
        out = client(code, url, tmp_path)
    reference = Tokenizer.from_file(str(hub_root / "models" / TOKENIZER_REPO / "tokenizer.json"))
    assert out["special"] == [0, 1, 2, "<|EOS|>", "<|BOS|>", "<|PAD|>"]
    assert out["texts"] == [[1] + reference.encode(t).ids for t in texts]
    assert all(len(ids) == 1 for ids in out["words"]), dict(zip(words, out["words"]))
    assert out["digits"] == [reference.token_to_id(d) for d in "2023"]
    assert out["size"] <= 48262


def test_gelu4l_from_pretrained_loads_the_fixture_weights(hub_root, tmp_path):
    from transformer_lens import HookedTransformer

    flags = {"fold_ln": True, "center_writing_weights": True, "center_unembed": True, "fold_value_biases": True,
             "refactor_factored_attn_matrices": False}
    out = tmp_path / "loaded.pt"
    code = f"""
import torch
from transformer_lens import HookedTransformer
raw = HookedTransformer.from_pretrained_no_processing("gelu-4l", device="cpu", dtype=torch.float32)
model = HookedTransformer.from_pretrained("gelu-4l", device="cpu", dtype=torch.float32, **{flags!r})
torch.save({{"raw": dict(raw.named_parameters()), "processed": model.state_dict(), "cfg": model.cfg,
            "bos": model.to_tokens("hi")[0, 0].item()}}, {str(out)!r})
print(json.dumps(model.cfg.tokenizer_name))
"""
    log: list[Request] = []
    with serve(hub_root, log=log) as url:
        assert client(code, url, tmp_path) == TOKENIZER_REPO
    loaded = torch.load(out, weights_only=False)
    fixture = torch.load(hub_root / "models" / GELU4L_REPO / "model_final.pth")
    # unprocessed: exactly the fixture's tensors under exactly its keys (TL loads with strict=False)
    assert set(loaded["raw"]) == set(fixture)
    assert all(torch.equal(loaded["raw"][k].detach(), v) for k, v in fixture.items())
    # processed: what TransformerLens' own processing makes of the fixture state dict
    cfg = loaded["cfg"]
    cfg.tokenizer_name = None  # no tokenizer download in this process
    reference = HookedTransformer(cfg)
    reference.load_and_process_state_dict(fixture, **flags)
    assert loaded["processed"].keys() == reference.state_dict().keys()
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in loaded["processed"].items())
    assert loaded["bos"] == 1
    assert not any("model_100.pth" in r.path for r in log)  # the decoy checkpoint is listed, never fetched


def test_datasets_streaming_yields_every_row_with_ranged_reads(hub_root, tmp_path):
    code = f"""
import hashlib
import numpy as np
from datasets import load_dataset
out = {{}}
for repo in {[C4_REPO, CODE_REPO]!r}:
    rows = np.array([r["tokens"] for r in load_dataset(repo, split="train", streaming=True)], dtype=np.int64)
    out[repo] = [list(rows.shape), hashlib.sha256(rows.tobytes()).hexdigest()]
print(json.dumps(out))
"""
    log: list[Request] = []
    with serve(hub_root, log=log) as url:
        out = client(code, url, tmp_path)
    for repo, spec in GELU4L_DATASETS.items():
        shards = sorted((hub_root / "datasets" / repo / "data").iterdir())
        rows = np.concatenate([np.array(pq.read_table(p)["tokens"].to_pylist(), dtype=np.int64) for p in shards])
        assert rows.shape == (spec.n_shards * spec.rows_per_shard, SEQ_LEN)
        assert out[repo] == [list(rows.shape), hashlib.sha256(rows.tobytes()).hexdigest()]
    assert any(r.server == "cdn" and r.status == 206 for r in log)  # parquet is read in ranges


def test_gpt2_small_loads_through_the_renamed_repo(hub_root, tmp_path):
    from safetensors.torch import load_file

    shape = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["models"]["gpt2-small"]["shape"]
    out = tmp_path / "gpt2.pt"
    code = f"""
import torch
from transformer_lens import HookedTransformer
model = HookedTransformer.from_pretrained_no_processing("gpt2-small", device="cpu", dtype=torch.float32)
c = model.cfg
torch.save({{k: model.state_dict()[k] for k in ("embed.W_E", "pos_embed.W_pos", "blocks.11.mlp.W_out")}}, {str(out)!r})
print(json.dumps({{"n_layers": c.n_layers, "n_heads": c.n_heads, "n_ctx": c.n_ctx, "d_vocab": c.d_vocab,
                  "d_model": c.d_model, "bos": model.tokenizer.bos_token_id}}))
"""
    log: list[Request] = []
    with serve(hub_root, log=log) as url:
        cfg = client(code, url, tmp_path)
    folder = hub_root / "models" / GPT2_REPO
    hf_cfg = json.loads((folder / "config.json").read_text())
    assert {k: cfg[k] for k in ("n_layers", "n_heads", "n_ctx", "d_vocab")} == {
        k: shape[k] for k in ("n_layers", "n_heads", "n_ctx", "d_vocab")}
    assert cfg["d_model"] == hf_cfg["n_embd"] and cfg["bos"] == hf_cfg["bos_token_id"]
    weights, loaded = load_file(folder / "model.safetensors"), torch.load(out)
    assert torch.equal(loaded["embed.W_E"], weights["wte.weight"])
    assert torch.equal(loaded["pos_embed.W_pos"], weights["wpe.weight"])
    assert torch.equal(loaded["blocks.11.mlp.W_out"], weights["h.11.mlp.c_proj.weight"])
    assert ("hub", "GET", "/api/models/gpt2", 307) in log  # TransformerLens asks for "gpt2", renamed on the Hub


def test_ranges_and_heads_answered_by_the_server(hub_root):
    data = (hub_root / "models" / GELU4L_REPO / "config.json").read_bytes()

    def fetch(url: str, method: str = "GET", **headers) -> tuple[int, dict, bytes]:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method=method, headers=headers)) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    with serve(hub_root) as url:
        file_url = f"{url}/{GELU4L_REPO}/resolve/main/config.json"
        status, headers, body = fetch(file_url, "HEAD")
        assert (status, headers["Content-Length"], body) == (200, str(len(data)), b"")
        assert headers["ETag"] == f'"{hashlib.sha1(b"blob %d" % len(data) + bytes(1) + data).hexdigest()}"'
        for spec, first, last in (("5-9", 5, 9), ("10-", 10, len(data) - 1), ("-7", len(data) - 7, len(data) - 1)):
            status, headers, body = fetch(file_url, Range=f"bytes={spec}")
            assert (status, headers["Content-Range"], body) == (206, f"bytes {first}-{last}/{len(data)}",
                                                                data[first : last + 1])
        status, headers, _ = fetch(file_url, Range=f"bytes={len(data)}-")
        assert (status, headers["Content-Range"]) == (416, f"bytes */{len(data)}")
    with pytest.raises(urllib.error.URLError):  # stopped: nothing answers any more
        urllib.request.urlopen(file_url, timeout=5)


def test_cli_serves_until_killed_and_rejects_a_bad_root(hub_root, tmp_path):
    log_file = tmp_path / "requests.log"
    proc = subprocess.Popen([sys.executable, "-m", "tests.hub_standin", str(hub_root), "--log", str(log_file)],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        with urllib.request.urlopen(f"{url}/api/models/{GELU4L_REPO}", timeout=10) as r:
            assert json.load(r)["id"] == GELU4L_REPO
        assert log_file.read_text().splitlines() == [f"hub GET /api/models/{GELU4L_REPO} 200"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    bad = subprocess.run([sys.executable, "-m", "tests.hub_standin", str(tmp_path / "absent")], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.strip().splitlines()) == 1
    assert "absent" in bad.stderr


def test_commit_sha_follows_the_contents(hub_root, tmp_path):
    folder = tmp_path / "tokenizer-copy"
    shutil.copytree(hub_root / "models" / TOKENIZER_REPO, folder)
    before = scan_repo("models", TOKENIZER_REPO, folder).sha
    assert scan_repo("models", TOKENIZER_REPO, folder).sha == before
    (folder / "tokenizer_config.json").write_text("{}")
    assert scan_repo("models", TOKENIZER_REPO, folder).sha != before


def test_fixtures_are_deterministic_and_bad_input_is_one_line(hub_root, tmp_path):
    again = tmp_path / "again"
    build_fixtures(again)
    assert {n: sha256(p) for n, p in repo_files(again).items()} == {
        n: sha256(p) for n, p in repo_files(hub_root).items()}
    bad = subprocess.run([sys.executable, "-m", "scripts.build_hub_fixtures", str(again)], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "must be an empty folder" in bad.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again"]  # nothing half-written next to it


def test_token_shards_layout(tmp_path):
    spec = GELU4L_DATASETS[CODE_REPO]
    paths = write_token_shards(tmp_path, spec.n_shards, spec.rows_per_shard, spec.seed, spec.marker_base,
                               spec.vocab_size, spec.row_group_size)
    n = spec.n_shards
    for i, path in enumerate(paths):
        match = re.fullmatch(rf"train-{i:05d}-of-{n:05d}-([0-9a-f]{{16}})\.parquet", path.name)
        assert match and sha256(path).startswith(match.group(1)) and path.parent == tmp_path / "data"
        meta = pq.ParquetFile(path).metadata
        assert meta.row_group(0).num_rows == spec.row_group_size and meta.num_rows == spec.rows_per_shard
        table = pq.read_table(path)
        assert str(table.schema.field("tokens").type) == "list<element: int64>"
        rows = np.array(table["tokens"].to_pylist())
        assert rows.shape == (spec.rows_per_shard, SEQ_LEN) and (rows[:, 0] == 1).all()
        assert rows[:, 1].tolist() == [spec.marker_base + i * spec.rows_per_shard + r for r in range(len(rows))]
        assert rows[:, 2:].min() >= 3 and rows[:, 2:].max() < spec.vocab_size
    with pytest.raises(ValueError, match="marker ids"):
        write_token_shards(tmp_path / "x", 2, 10, 0, spec.vocab_size - 5, spec.vocab_size, 4)
