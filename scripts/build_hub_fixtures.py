"""Build the stand-in Hub's repos (``tests/hub_standin.py``): gelu-4l's four repos and gpt2, random, real formats.

- ``models/NeelNanda/GELU_4L512W_C4_Code``: ``config.json`` with the fields TransformerLens'
  ``convert_neel_model_config`` reads, ``model_final.pth`` (a torch state dict in TransformerLens' own key names,
  float32, random, LayerNorm gains away from 1 and non-zero biases) and a decoy ``checkpoints/model_100.pth``
  (other weights: only "the file ending in final.pth" is right). gelu-4l's layers, heads, vocab and context; a
  reduced width (``d_model`` etc.) keeps the file a few MB.
- ``models/NeelNanda/gpt-neox-tokenizer-digits``: its three files; the BPE is the project's planted tokenizer
  (ids 0 ``<|EOS|>``, 1 ``<|BOS|>``, 2 ``<|PAD|>``, digits split, Fig 5's pair words single tokens).
- ``datasets/NeelNanda/c4-tokenized-2b`` and ``datasets/NeelNanda/code-tokenized``: ``README.md`` and parquet
  shards from ``write_token_shards`` (marker ids tell which row a reader got).
- ``models/openai-community/gpt2`` (``gpt2`` is renamed to it, as on the Hub): GPT-2's config, generation config,
  ``model.safetensors`` in GPT-2's key names (12 layers, 12 heads, vocab 50257, 1024 positions; reduced width;
  no ``attn.bias`` mask buffers) and its four tokenizer files, a byte-level BPE from the planted tokenizer's merges.
- every repo has a ``.gitattributes`` putting weights and parquet in LFS, which the stand-in serves like the Hub.

Everything is seeded: the same arguments give the same bytes. Nothing here is committed as a file; tests and the
end-to-end run build it into a temporary folder.

Usage: ``python -m scripts.build_hub_fixtures ROOT`` (ROOT must be empty or not exist).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
PLANTED_TOKENIZER = REPO_ROOT / "erasure" / "models" / "assets" / "planted_tokenizer.json"

GELU4L_REPO = "NeelNanda/GELU_4L512W_C4_Code"
TOKENIZER_REPO = "NeelNanda/gpt-neox-tokenizer-digits"
GPT2_REPO = "openai-community/gpt2"
GPT2_OLD_ID = "gpt2"  # TransformerLens asks for "gpt2"; the Hub redirects it to GPT2_REPO
GELU4L_SHAPE = {"n_layers": 4, "n_heads": 8, "n_ctx": 1024, "d_vocab": 48262}
GPT2_SHAPE = {"n_layer": 12, "n_head": 12, "n_positions": 1024, "vocab_size": 50257}
SPECIAL_TOKENS = {"eos_token": "<|EOS|>", "bos_token": "<|BOS|>", "pad_token": "<|PAD|>"}
GPT2_EOT = "<|endoftext|>"
LFS_PATTERNS = ["*.bin", "*.h5", "*.msgpack", "*.onnx", "*.parquet", "*.pt", "*.pth", "*.safetensors", "*.arrow",
                "*.pkl", "*.npy", "*.npz", "*.zip", "*.gz", "*tfevents*"]

SEQ_LEN = 1024  # ids per row, as in NeelNanda's tokenized datasets
BOS_ID = 1
FIRST_RANDOM_ID = 3  # ids 0, 1, 2 are <|EOS|>, <|BOS|>, <|PAD|>


@dataclass(frozen=True)
class ShardSpec:
    """Arguments of ``write_token_shards`` for one dataset repo."""

    n_shards: int
    rows_per_shard: int
    seed: int
    marker_base: int
    vocab_size: int
    row_group_size: int


TOKENIZER_VOCAB = 16384  # the stand-in tokenizer's vocabulary (erasure/models/assets/planted_tokenizer.json)
GELU4L_DATASETS = {
    "NeelNanda/c4-tokenized-2b": ShardSpec(5, 60, seed=1, marker_base=10_000, vocab_size=TOKENIZER_VOCAB,
                                           row_group_size=16),
    "NeelNanda/code-tokenized": ShardSpec(3, 40, seed=2, marker_base=11_000, vocab_size=TOKENIZER_VOCAB,
                                          row_group_size=16),
}


def write_token_shards(
    folder: Path,
    n_shards: int,
    rows_per_shard: int,
    seed: int,
    marker_base: int,
    vocab_size: int,
    row_group_size: int,
) -> list[Path]:
    """Write ``folder/data/train-{i:05d}-of-{n:05d}-<16 hex>.parquet``: one column ``tokens`` (list<int64>).

    Each row has SEQ_LEN ids: BOS (1) first, then a marker id ``marker_base + global row index`` (shard-major), so
    a reader can tell which row it got, then seeded random ids in [3, vocab_size). Small row groups, as a
    streamed read sees them. The 16 hex are the start of the shard's sha256. Returns the shard paths in order.
    """
    for name, value, low in (("n_shards", n_shards, 1), ("rows_per_shard", rows_per_shard, 1),
                             ("row_group_size", row_group_size, 1), ("marker_base", marker_base, FIRST_RANDOM_ID)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name} = {value!r} is not allowed: must be an integer >= {low}")
    if marker_base + n_shards * rows_per_shard > vocab_size:
        raise ValueError(f"marker ids {marker_base}..{marker_base + n_shards * rows_per_shard - 1} must be "
                         f"< vocab_size = {vocab_size}")
    data = Path(folder) / "data"
    if data.exists() and any(data.glob("train-*.parquet")):
        raise FileExistsError(f"{data} already holds train-*.parquet shards")
    data.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    offsets = pa.array(np.arange(rows_per_shard + 1, dtype=np.int32) * SEQ_LEN)
    paths = []
    for i in range(n_shards):
        tokens = rng.integers(FIRST_RANDOM_ID, vocab_size, size=(rows_per_shard, SEQ_LEN), dtype=np.int64)
        tokens[:, 0] = BOS_ID
        tokens[:, 1] = marker_base + i * rows_per_shard + np.arange(rows_per_shard)
        column = pa.ListArray.from_arrays(offsets, pa.array(tokens.reshape(-1)))
        buf = io.BytesIO()
        pq.write_table(pa.table({"tokens": column}), buf, row_group_size=row_group_size)
        digest = hashlib.sha256(buf.getvalue()).hexdigest()[:16]
        path = data / f"train-{i:05d}-of-{n_shards:05d}-{digest}.parquet"
        path.write_bytes(buf.getvalue())
        paths.append(path)
    return paths


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def write_gitattributes(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".gitattributes").write_text("".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in LFS_PATTERNS))


def randn(g: torch.Generator, *shape: int, std: float, mean: float = 0.0) -> torch.Tensor:
    return (torch.randn(shape, generator=g, dtype=torch.float32) * std + mean).contiguous()


def gelu4l_state_dict(seed: int, d_model: int, d_head: int, d_mlp: int) -> dict[str, torch.Tensor]:
    """gelu-4l's state dict in TransformerLens' key names, random (LN gains ~ 1 +- 0.2, biases non-zero)."""
    g = torch.Generator().manual_seed(seed)
    n_heads, d_vocab = GELU4L_SHAPE["n_heads"], GELU4L_SHAPE["d_vocab"]
    sd = {"embed.W_E": randn(g, d_vocab, d_model, std=0.5), "pos_embed.W_pos": randn(g, GELU4L_SHAPE["n_ctx"],
                                                                                       d_model, std=0.1)}
    for i in range(GELU4L_SHAPE["n_layers"]):
        b = f"blocks.{i}"
        for ln in ("ln1", "ln2"):
            sd[f"{b}.{ln}.w"] = randn(g, d_model, std=0.2, mean=1.0)
            sd[f"{b}.{ln}.b"] = randn(g, d_model, std=0.1)
        for w in ("W_Q", "W_K", "W_V"):
            sd[f"{b}.attn.{w}"] = randn(g, n_heads, d_model, d_head, std=d_model**-0.5)
        sd[f"{b}.attn.W_O"] = randn(g, n_heads, d_head, d_model, std=(n_heads * d_head) ** -0.5)
        for bias in ("b_Q", "b_K", "b_V"):
            sd[f"{b}.attn.{bias}"] = randn(g, n_heads, d_head, std=0.1)
        sd[f"{b}.attn.b_O"] = randn(g, d_model, std=0.1)
        sd[f"{b}.mlp.W_in"] = randn(g, d_model, d_mlp, std=d_model**-0.5)
        sd[f"{b}.mlp.b_in"] = randn(g, d_mlp, std=0.1)
        sd[f"{b}.mlp.W_out"] = randn(g, d_mlp, d_model, std=d_mlp**-0.5)
        sd[f"{b}.mlp.b_out"] = randn(g, d_model, std=0.1)
    sd["ln_final.w"] = randn(g, d_model, std=0.2, mean=1.0)
    sd["ln_final.b"] = randn(g, d_model, std=0.1)
    sd["unembed.W_U"] = randn(g, d_model, d_vocab, std=d_model**-0.5)
    sd["unembed.b_U"] = randn(g, d_vocab, std=0.1)
    return sd


def gelu4l_config(d_model: int, d_head: int, d_mlp: int) -> dict:
    """The fields TransformerLens' convert_neel_model_config reads (GELU, LayerNorm, no shortformer)."""
    return {**GELU4L_SHAPE, "d_model": d_model, "d_head": d_head, "d_mlp": d_mlp, "act_fn": "gelu",
            "attn_only": False, "normalization": "LN", "shortformer_pos": False, "tokenizer_name": TOKENIZER_REPO}


def build_gelu4l(folder: Path, seed: int, d_model: int, d_head: int, d_mlp: int) -> None:
    write_gitattributes(folder)
    write_json(folder / "config.json", gelu4l_config(d_model, d_head, d_mlp))
    torch.save(gelu4l_state_dict(seed, d_model, d_head, d_mlp), folder / "model_final.pth")
    (folder / "checkpoints").mkdir()
    torch.save(gelu4l_state_dict(seed + 1, d_model, d_head, d_mlp), folder / "checkpoints" / "model_100.pth")


def build_tokenizer(folder: Path) -> None:
    vocab = json.loads(PLANTED_TOKENIZER.read_text())["model"]["vocab"]
    if len(vocab) != TOKENIZER_VOCAB:
        raise ValueError(f"{PLANTED_TOKENIZER} has {len(vocab)} ids, TOKENIZER_VOCAB says {TOKENIZER_VOCAB}")
    write_gitattributes(folder)
    shutil.copyfile(PLANTED_TOKENIZER, folder / "tokenizer.json")
    write_json(folder / "tokenizer_config.json", {"tokenizer_class": "PreTrainedTokenizerFast"})
    write_json(folder / "special_tokens_map.json", SPECIAL_TOKENS)


def build_dataset(folder: Path, repo_id: str, spec: ShardSpec) -> None:
    """The shards and a dataset card like ``push_to_hub`` writes (features, split size in rows and bytes)."""
    write_gitattributes(folder)
    shards = write_token_shards(folder, spec.n_shards, spec.rows_per_shard, spec.seed, spec.marker_base,
                                spec.vocab_size, spec.row_group_size)
    n_bytes = sum(pq.read_table(p).nbytes for p in shards)
    download_size = sum(p.stat().st_size for p in shards)
    name = repo_id.split("/")[1]
    (folder / "README.md").write_text(
        "---\ndataset_info:\n  features:\n  - name: tokens\n    sequence: int64\n  splits:\n  - name: train\n"
        f"    num_bytes: {n_bytes}\n    num_examples: {spec.n_shards * spec.rows_per_shard}\n"
        f"  download_size: {download_size}\n  dataset_size: {n_bytes}\n---\n# {name} (stand-in)\n\n"
        f"Random token ids in the format of {repo_id}: one column `tokens`, {SEQ_LEN} ids per row, BOS first.\n")


def gpt2_tokenizer():
    """A GPT-2-format byte-level BPE: the planted tokenizer's vocab and merges without its three special tokens,
    GPT-2's pre-tokenizer (digits not split) and ``<|endoftext|>`` as the last id, as in GPT-2."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    planted = json.loads(PLANTED_TOKENIZER.read_text())["model"]
    n_special = len(SPECIAL_TOKENS)
    vocab = {tok: i - n_special for tok, i in planted["vocab"].items() if i >= n_special}
    vocab[GPT2_EOT] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m) for m in planted["merges"]]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([GPT2_EOT])
    return tok


def gpt2_state_dict(seed: int, n_embd: int) -> dict[str, torch.Tensor]:
    """GPT-2's weights in its checkpoint's key names (no ``transformer.`` prefix; Conv1D weights are in x out)."""
    g = torch.Generator().manual_seed(seed)
    sd = {"wte.weight": randn(g, GPT2_SHAPE["vocab_size"], n_embd, std=0.5),
          "wpe.weight": randn(g, GPT2_SHAPE["n_positions"], n_embd, std=0.1)}
    for i in range(GPT2_SHAPE["n_layer"]):
        h = f"h.{i}"
        for ln in ("ln_1", "ln_2"):
            sd[f"{h}.{ln}.weight"] = randn(g, n_embd, std=0.2, mean=1.0)
            sd[f"{h}.{ln}.bias"] = randn(g, n_embd, std=0.1)
        for name, n_in, n_out in (("attn.c_attn", n_embd, 3 * n_embd), ("attn.c_proj", n_embd, n_embd),
                                  ("mlp.c_fc", n_embd, 4 * n_embd), ("mlp.c_proj", 4 * n_embd, n_embd)):
            sd[f"{h}.{name}.weight"] = randn(g, n_in, n_out, std=n_in**-0.5)
            sd[f"{h}.{name}.bias"] = randn(g, n_out, std=0.1)
    sd["ln_f.weight"] = randn(g, n_embd, std=0.2, mean=1.0)
    sd["ln_f.bias"] = randn(g, n_embd, std=0.1)
    return sd


def build_gpt2(folder: Path, seed: int, n_embd: int) -> None:
    from safetensors.torch import save_file

    write_gitattributes(folder)
    tok = gpt2_tokenizer()
    eot = tok.token_to_id(GPT2_EOT)
    write_json(folder / "config.json", {
        "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
        "bos_token_id": eot, "embd_pdrop": 0.1, "eos_token_id": eot, "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": GPT2_SHAPE["n_positions"], "n_embd": n_embd,
        **GPT2_SHAPE, "resid_pdrop": 0.1, "summary_activation": None, "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True, "summary_type": "cls_index", "summary_use_proj": True,
        "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}}})
    write_json(folder / "generation_config.json", {"_from_model_config": True, "bos_token_id": eot,
                                                   "eos_token_id": eot})
    save_file(gpt2_state_dict(seed, n_embd), folder / "model.safetensors", metadata={"format": "pt"})
    tok.save(str(folder / "tokenizer.json"))
    tok.model.save(str(folder))  # vocab.json, merges.txt
    write_json(folder / "tokenizer_config.json", {"model_max_length": GPT2_SHAPE["n_positions"]})


def build_fixtures(root: Path, seed: int = 0, d_model: int = 16, d_head: int = 4, d_mlp: int = 64,
                   gpt2_n_embd: int = 24, datasets: dict[str, ShardSpec] | None = None) -> dict[str, Path]:
    """Build every stand-in repo under root (empty or absent; written to a temporary folder, then renamed).

    Returns {repo id: folder}. ``datasets`` defaults to GELU4L_DATASETS.
    """
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ValueError(f"root {root} must be an empty folder or not exist")
    for name, value in (("seed", seed), ("d_model", d_model), ("d_head", d_head), ("d_mlp", d_mlp)):
        if not isinstance(value, int) or value < (0 if name == "seed" else 1):
            raise ValueError(f"{name} = {value!r} is not allowed: must be an integer >= {0 if name == 'seed' else 1}")
    if not isinstance(gpt2_n_embd, int) or gpt2_n_embd < 1 or gpt2_n_embd % GPT2_SHAPE["n_head"]:
        raise ValueError(f"gpt2_n_embd = {gpt2_n_embd!r} is not allowed: must be a positive multiple of 12")
    datasets = GELU4L_DATASETS if datasets is None else datasets
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        folders = {GELU4L_REPO: tmp / "models" / GELU4L_REPO, TOKENIZER_REPO: tmp / "models" / TOKENIZER_REPO,
                   GPT2_REPO: tmp / "models" / GPT2_REPO}
        build_gelu4l(folders[GELU4L_REPO], seed, d_model, d_head, d_mlp)
        build_tokenizer(folders[TOKENIZER_REPO])
        build_gpt2(folders[GPT2_REPO], seed, gpt2_n_embd)
        for repo_id, spec in datasets.items():
            folders[repo_id] = tmp / "datasets" / repo_id
            build_dataset(folders[repo_id], repo_id, spec)
        write_json(tmp / "renamed.json", {"models": {GPT2_OLD_ID: GPT2_REPO}})
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {repo_id: root / folder.relative_to(tmp) for repo_id, folder in folders.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder to create (empty or absent)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        folders = build_fixtures(args.root, seed=args.seed)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for repo_id, folder in folders.items():
        print(f"{repo_id}: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
