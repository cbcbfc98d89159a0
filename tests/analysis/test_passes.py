"""The activations stage's passes: one clean pass serves discovery and the tables, with exactly the numbers each
gets from a pass of its own; the dtype of params `compute.dtype` is honoured throughout."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from erasure.analysis.activations import TablePass, write_meta
from erasure.analysis.clean_pass import clean_pass
from erasure.analysis.discovery.discover import DiscoveryPass, discover
from erasure.analysis.fig4 import load_points
from erasure.analysis.roles import Roles
from erasure.mechanism.names import Component
from erasure.params.sections import Discovery, Fig4, Stats
from helpers import repo_params, tiny_model

N, P, BATCH = 4, 48, 2
STATS = Stats.model_validate({**repo_params()["stats"], "n_bootstrap": 50})


def _tokens(vocab: int, bos: int) -> torch.Tensor:
    tokens = torch.randint(3, vocab, (N, P), generator=torch.Generator().manual_seed(3))
    tokens[:, 0] = bos
    return tokens


def _settings() -> tuple[Discovery, Fig4]:
    raw = repo_params()
    dp = Discovery.model_validate({**raw["discovery"], "n_vcomp_prompts": 2, "top_writers": 2, "hist_bins": 256})
    fig4 = Fig4.model_validate({**raw["fig4"], "aligned_top_k": 3, "code_variant": {"n_prompts": 2, "start_pos": 8}})
    return dp, fig4


def _embed_calls(model) -> list[int]:
    """A counter of forward passes that start from the tokens (the patched runs start at a later layer)."""
    calls = [0]

    def count(x, hook):
        calls[0] += 1

    model.add_hook("hook_embed", count)
    return calls


def _tables(out_dir) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(out_dir.iterdir())}


@pytest.mark.slow  # three passes of planted-4l and discovery twice: seconds
def test_one_clean_pass_gives_each_consumer_its_own_passes_numbers(planted, tmp_path):
    model, truth = planted
    tokens = _tokens(16384, model.tokenizer.bos_token_id)
    dp, fig4 = _settings()
    writer, erasers = Component.parse(truth.writer), [Component.parse(e) for e in truth.erasers]
    roles = dict(params_writer=truth.writer, params_erasers=sorted(truth.erasers))
    try:
        calls = _embed_calls(model)
        shared = DiscoveryPass(model, dp, STATS, N, P, keep_subset=True)
        tables = TablePass(model, Roles(writer, erasers), N, P, tmp_path / "shared", N, fig4)
        clean_pass(model, tokens, BATCH, [shared, tables], desc="test")
        found = shared.conclude(tokens, BATCH, "planted-4l", **roles)
        meta = tables.finish(model.tokenizer)
        assert calls[0] == N // BATCH  # one clean pass, the V-comp prompts kept from it

        alone = discover(model, tokens, dp, STATS, BATCH, "planted-4l", **roles)
        own = TablePass(model, Roles(writer, erasers), N, P, tmp_path / "alone", N, fig4)
        clean_pass(model, tokens, BATCH, [own], desc="test")
        assert calls[0] == 3 * (N // BATCH)
    finally:
        model.reset_hooks()
    assert found.record == alone.record  # bit for bit: hooks only read, the same batches run
    assert own.finish(model.tokenizer) == meta
    assert _tables(tmp_path / "shared") == _tables(tmp_path / "alone")


@pytest.mark.parametrize("dtype, atol", [
    (torch.float64, 1e-4),  # float32 vs float64 rounding of sums over d_model, ratios of O(1)
    (torch.bfloat16, 0.15),  # bfloat16 keeps 8 bits of mantissa: ~1% per value, summed over d_model
])
def test_the_model_dtype_is_honoured_end_to_end(tmp_path, dtype, atol):
    """Discovery, the tables and Fig 4's points run in the model's dtype (no mixed-dtype op fails) and agree with
    the float32 run to the stated tolerance."""
    dp, fig4 = _settings()
    writer, erasers = Component(0, 1), [Component(2, 0), Component(2, 3)]
    results = {}
    for name, dt in (("float32", torch.float32), ("other", dtype)):
        model = tiny_model().to(dt, print_details=False)
        tokens = _tokens(100, 1)
        found = DiscoveryPass(model, dp, STATS, N, P, keep_subset=True)
        tables = TablePass(model, Roles(writer, erasers), N, P, tmp_path / name, N, fig4)
        clean_pass(model, tokens, BATCH, [found, tables], desc="test")
        record = found.conclude(tokens, BATCH)
        meta = tables.finish(SimpleNamespace(decode=lambda ids: f"<{ids[0]}>"))  # the tiny model has no tokenizer
        write_meta(tmp_path / name, meta | {"model": "tiny"})
        points, _ = load_points(tmp_path / name)
        results[name] = (record, np.load(tmp_path / name / "component_pr.npy"), points, meta)
    (rec32, comp32, pts32, meta32), (rec, comp, pts, meta) = results["float32"], results["other"]
    assert comp.dtype == np.float32 and np.isfinite(comp).all()
    np.testing.assert_allclose(comp, comp32, atol=atol, rtol=0)
    np.testing.assert_allclose(pts["writer"], pts32["writer"], atol=atol * 10, rtol=0.05)  # DLA values are O(10)
    assert rec.record["n_tokens"] == rec32.record["n_tokens"] and meta["checkpoints"] == meta32["checkpoints"]
