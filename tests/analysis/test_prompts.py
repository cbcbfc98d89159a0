"""Prompt sets: the offline builder, and the authors' streaming procedure (docs/methods.md §2) on a local stand-in."""
import copy
from pathlib import Path

import pytest
import torch
import yaml

from erasure.analysis.prompt_files import load_prompts, save_prompts
from erasure.analysis.prompts import build_prompts
from erasure.params.load import validate_params

REPO = Path(__file__).resolve().parents[2]


def _params(model: str, **prompts):
    raw = copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text()))
    raw["model"] = model
    raw["models"][model]["prompts"].update(prompts)
    return validate_params(raw)


@pytest.fixture(scope="module")
def tokenizer():
    from erasure.models.planted import planted_tokenizer

    return planted_tokenizer()


def test_offline_prompts_are_seeded_with_bos_first(tokenizer, tmp_path):
    params = _params("planted-4l", n_text=3, n_code=2, seq_len=64)
    tokens, info = build_prompts(params, tokenizer, bos=1)
    again, _ = build_prompts(params, tokenizer, bos=1)
    other, _ = build_prompts(_params("planted-4l", n_text=3, n_code=2, seq_len=64, seed=1), tokenizer, bos=1)
    assert tokens.shape == (5, 64) and tokens.dtype == torch.int64
    assert (tokens[:, 0] == 1).all() and (tokens[:, 1:] != 1).all()
    assert torch.equal(tokens, again) and not torch.equal(tokens, other)
    assert sum(info["is_code"]) == 2 and tokens.max() < 48262
    save_prompts(tmp_path, tokens, info)
    assert torch.equal(load_prompts(params, tmp_path)[0], tokens)


def _write_shard(path: Path, first_marker: int, n_rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [[1, first_marker + i] + [7] * 1022 for i in range(n_rows)]
    pq.write_table(pa.table({"tokens": pa.array(rows, type=pa.list_(pa.int64()))}), path, row_group_size=8)


def test_authors_procedure_composes_sampler_text_code_and_randperm(monkeypatch, tmp_path):
    """Text rows then code rows, each the 2023 shuffle of its dataset's sorted train shards, then randperm(seed).

    The Hub layer is replaced by local files; the sampler itself is checked against datasets 2.14.4 elsewhere
    (tests/analysis/test_authors_sampling.py), so the expected order here comes from calling it directly on the same shards.
    """
    from erasure.analysis.authors_sampling import iter_parquet_rows, shuffled_rows_2023
    from erasure.analysis.prompts import train_shards
    from erasure.models import hub

    files = {"text-ds": ["README.md", "data/train-00001-of-00002-a.parquet", "data/train-00000-of-00002-a.parquet"],
             "code-ds": ["data/train-00000-of-00001-b.parquet", "data/test-00000-of-00001-b.parquet"]}
    markers = {"text-ds": 1000, "code-ds": 2000}
    for repo, names in files.items():
        for k, name in enumerate(sorted(n for n in names if n.endswith(".parquet"))):
            (tmp_path / repo / name).parent.mkdir(parents=True, exist_ok=True)
            _write_shard(tmp_path / repo / name, markers[repo] + 100 * k, 20)

    class Rev(str):
        resolved = "0" * 40

    monkeypatch.setattr(hub, "resolve", lambda repo, revision, what, repo_type="model": Rev("main"))
    monkeypatch.setattr(hub, "snapshot", lambda *args, **kwargs: tmp_path)
    monkeypatch.setattr(hub, "cached_file_list", lambda repo, rev, what, repo_type="model": files[repo])
    monkeypatch.setattr(hub, "download", lambda repo, name, rev, what, repo_type="model": tmp_path / repo / name)
    params = _params("gelu-4l", n_text=4, n_code=2, seq_len=16, text_dataset="text-ds", code_dataset="code-ds")
    tokens, info = build_prompts(params, tokenizer=None, bos=1)

    def expected_markers(repo, n):
        shards = [tmp_path / repo / name for name in train_shards(files[repo])]
        stream = shuffled_rows_2023(shards, iter_parquet_rows, seed=5235, buffer_size=10)
        return [row[1] for _, row in zip(range(n), stream)]

    assert train_shards(files["text-ds"]) == sorted(files["text-ds"][1:])  # README and other splits left out
    assert train_shards(files["code-ds"]) == ["data/train-00000-of-00001-b.parquet"]
    stacked = expected_markers("text-ds", 4) + expected_markers("code-ds", 2)
    torch.manual_seed(5235)
    order = torch.randperm(6)
    assert tokens.shape == (6, 16) and (tokens[:, 0] == 1).all()
    assert tokens[:, 1].tolist() == [stacked[i] for i in order]
    assert info["is_code"] == [bool(i >= 4) for i in order]
    assert info["datasets"] == {r: {"repo": r, "commit": "0" * 40} for r in ("text-ds", "code-ds")}
    assert stacked[:4] != sorted(stacked[:4])  # the buffer did shuffle


def test_authors_rows_fail_clearly_when_the_stream_is_short(monkeypatch, tmp_path):
    from erasure.analysis.prompts import authors_rows
    from erasure.errors import DataError
    from erasure.models import hub

    _write_shard(tmp_path / "train-00000-of-00001.parquet", 100, 5)

    class Rev(str):
        resolved = "0" * 40

    monkeypatch.setattr(hub, "resolve", lambda *args, **kwargs: Rev("main"))
    monkeypatch.setattr(hub, "snapshot", lambda *args, **kwargs: tmp_path)
    monkeypatch.setattr(hub, "cached_file_list", lambda *args, **kwargs: ["train-00000-of-00001.parquet"])
    monkeypatch.setattr(hub, "download", lambda repo, name, *args, **kwargs: tmp_path / name)
    with pytest.raises(DataError, match="has only 5 rows, fewer than the 8 asked for"):
        authors_rows("ds", None, 8, 16, 5235, 10, {})
