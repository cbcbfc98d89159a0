"""Prompt sets: the offline builder, and the authors' streaming procedure (docs/methods.md §2) on a local stand-in."""
import copy
from pathlib import Path

import pytest
import torch
import yaml

from erasure.analysis.prompts import build_prompts, load_prompts, save_prompts
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
    assert torch.equal(load_prompts(tmp_path), tokens)


def test_authors_procedure_on_a_local_stream(monkeypatch):
    """Streaming shuffle (seed, buffer 10), first n rows, text then code, then torch.randperm(seed)."""
    import datasets

    def rows(offset):
        def gen():
            for i in range(40):
                yield {"tokens": [1] + [offset + i] * 1023}
        return gen

    streams = {"text-ds": rows(1000), "code-ds": rows(2000)}
    monkeypatch.setattr("erasure.models.hub.require_hub", lambda *args, **kwargs: None)
    monkeypatch.setattr(datasets, "load_dataset",
                        lambda name, split, streaming: datasets.IterableDataset.from_generator(streams[name]))
    params = _params("gelu-4l", n_text=4, n_code=2, seq_len=16, text_dataset="text-ds", code_dataset="code-ds")
    tokens, info = build_prompts(params, tokenizer=None, bos=1)

    def expected_ids(name, n):
        stream = datasets.IterableDataset.from_generator(streams[name]).shuffle(seed=5235, buffer_size=10)
        return [row["tokens"][1] for _, row in zip(range(n), stream)]

    stacked = expected_ids("text-ds", 4) + expected_ids("code-ds", 2)
    torch.manual_seed(5235)
    order = torch.randperm(6)
    assert tokens.shape == (6, 16) and (tokens[:, 0] == 1).all()
    assert tokens[:, 1].tolist() == [stacked[i] for i in order]
    assert info["is_code"] == [bool(i >= 4) for i in order]
    assert stacked[:4] != sorted(stacked[:4]) or stacked[4:] != sorted(stacked[4:])  # the buffer did shuffle
