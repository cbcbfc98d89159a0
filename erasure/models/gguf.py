"""Offline models shipped as GGUF files in PyPI packages, as float32 TransformerLens models: one path, per-model specs.

The path (the same for every model; erasure.models.smollm2 and erasure.models.gemma3 hold the per-model settings):
1. the model's package gives the GGUF file (SmolLM2: one file in site-packages; Gemma 3: assembled from chunk
   packages, sha256 checked by the package);
2. `transformers` dequantizes it to a float32 Hugging Face model (with `gguf`); the gguf `quantization_config` is
   dropped (TransformerLens refuses a model that carries it and `save_pretrained` raises), and the float32 HF copy
   is saved: `config.json` + `model.safetensors` (used for the logits cross-check against TransformerLens);
3. the tokenizer converted from the GGUF (plus the model's correction, if any) is saved in `tokenizer/`;
4. TransformerLens converts the HF weights with its own converter for the architecture and processes them with
   `PROCESSING` (fold_ln, center_unembed, ...); the processed state dict is saved as `transformer_lens.safetensors`,
   so later loads skip the conversion (Gemma 3: 28 s and +2.5 GB of peak memory per load).

Everything goes into `<cache root>/<model key>/<sha256(gguf)[:16]>-v<CACHE_VERSION>/` (root: `$XDG_CACHE_HOME`
or `~/.cache`, then `erasure-repro`), built in a temporary sibling and renamed into place, so a crash leaves no
half-written cache; a changed GGUF has a different hash and gets its own folder. `meta.json` records the GGUF's
metadata and hash, the library versions and the processing flags.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from erasure.errors import DataError, ParamError

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

CACHE_VERSION = 2  # bump when the cached layout, a tokenizer fix or the processing changes
# TransformerLens processing of every GGUF model. center_writing_weights is skipped by TransformerLens for RMS
# models anyway (stated here so the cache records it); fold_value_biases is a no-op (no b_V in either model).
PROCESSING = {"fold_ln": True, "center_writing_weights": False, "center_unembed": True, "fold_value_biases": True}
TL_FILE = "transformer_lens.safetensors"
_CACHE_FILES = ("config.json", "model.safetensors", "meta.json", "tokenizer/tokenizer.json", TL_FILE)


@dataclass(frozen=True)
class GgufModel:
    """What differs between GGUF models; everything else is the shared path of this module."""

    key: str  # the params model name and the cache folder
    title: str  # for messages
    model_name: str  # HookedTransformerConfig.model_name and the HF config's name_or_path
    install: str  # the pip command that installs the weights package
    architecture: str  # expected GGUF general.architecture
    pre_tokenizer: str  # expected GGUF tokenizer.ggml.pre
    locate: Callable[[], tuple[str, Callable[[Path], Path]]]  # -> (sha256 of the GGUF, writer of the GGUF into a dir)
    tl_config: Callable[[Any], HookedTransformerConfig]  # HF config -> TL config (RMS norms, before processing)
    convert: Callable[[PreTrainedModel, HookedTransformerConfig], dict]  # TransformerLens's weight converter
    fix_tokenizer: Callable[[PreTrainedTokenizerBase], PreTrainedTokenizerBase] | None = None
    tokenizer_fix: str | None = None  # what fix_tokenizer does (recorded in meta.json)


def set_offline() -> None:
    """Never touch the network: the GGUF and the cache are local files."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "erasure-repro"


def cache_dir_of(spec: GgufModel, cache_dir: Path | None = None) -> Path:
    """The model's cache folder (its versions live inside): `cache_dir` or the default root + the model key."""
    return Path(cache_dir) if cache_dir is not None else default_cache_root() / spec.key


# ------------------------------------------------------------------------------------------------ building the cache
def gguf_metadata(gguf: Path) -> dict[str, Any]:
    import gguf as gguf_lib

    reader = gguf_lib.GGUFReader(str(gguf))
    keys = ("general.name", "general.architecture", "general.license", "tokenizer.ggml.pre",
            "tokenizer.ggml.add_bos_token")
    out: dict[str, Any] = {}
    for key in keys:
        field = reader.fields.get(key)
        out[key] = None if field is None else field.contents()
    return out


def _processed_tl_state(spec: GgufModel, hf_model: PreTrainedModel, tokenizer) -> dict[str, torch.Tensor]:
    """TransformerLens's conversion + processing of the HF weights, as a state dict for an RMSPre model."""
    from transformer_lens import HookedTransformer

    cfg = spec.tl_config(hf_model.config)
    model = HookedTransformer(cfg, tokenizer=tokenizer, default_padding_side="right")
    with torch.no_grad():
        state_dict = spec.convert(hf_model, cfg)
        missing = {name for name, _ in model.named_parameters()} - set(state_dict)
        if missing:  # init_weights=False: a parameter the converter does not fill would stay uninitialised
            raise RuntimeError(f"TransformerLens's converter left {spec.title} parameters unset: {sorted(missing)[:5]}")
        model.load_and_process_state_dict(state_dict, **PROCESSING)
    if model.cfg.normalization_type != "RMSPre":
        raise RuntimeError(f"{spec.title}: TransformerLens processing did not give RMSPre norms")
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def _build_cache(spec: GgufModel, write_gguf: Callable[[Path], Path], target: Path, sha256: str) -> None:
    """Dequantize the GGUF and convert it into `target` (atomic: built in a temp sibling, then renamed)."""
    set_offline()
    import importlib.metadata

    import safetensors.torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; the renamed cache should look like any other folder
    try:
        gguf = write_gguf(tmp / "gguf")
        meta = gguf_metadata(gguf)
        if meta["general.architecture"] != spec.architecture or meta["tokenizer.ggml.pre"] != spec.pre_tokenizer:
            raise DataError(
                f"{gguf.name} is not the expected {spec.title} GGUF (architecture={meta['general.architecture']!r}, "
                f"pre-tokenizer={meta['tokenizer.ggml.pre']!r}; expected {spec.architecture!r}/{spec.pre_tokenizer!r})"
            )
        folder, name = str(gguf.parent), gguf.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
        if spec.fix_tokenizer is not None:
            tokenizer = spec.fix_tokenizer(tokenizer)
        tokenizer.save_pretrained(tmp / "tokenizer")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hf_model = AutoModelForCausalLM.from_pretrained(
                folder, gguf_file=name, dtype=torch.float32, local_files_only=True
            )
        # The weights are plain float32 now; the gguf quantizer marker only blocks TL and save_pretrained.
        if hasattr(hf_model.config, "quantization_config"):
            del hf_model.config.quantization_config
        hf_model.hf_quantizer = None
        hf_model.config.name_or_path = spec.model_name
        hf_model.save_pretrained(tmp, safe_serialization=True)
        shutil.rmtree(tmp / "gguf", ignore_errors=True)  # an assembled copy (Gemma 3) is not kept
        del hf_model
        hf_model = _load_hf(tmp)  # the saved copy (memory-mapped): converted exactly as later loads see it
        state = _processed_tl_state(spec, hf_model, tokenizer)
        del hf_model
        safetensors.torch.save_file(state, str(tmp / TL_FILE))
        del state
        meta.update(
            {
                "gguf_file": gguf.name,
                "gguf_sha256": sha256,
                "cache_version": CACHE_VERSION,
                "transformers_version": transformers.__version__,
                "transformer_lens_version": importlib.metadata.version("transformer-lens"),
                "torch_version": torch.__version__,
                "processing": PROCESSING,
                "tokenizer_fix": spec.tokenizer_fix,
                "files": {
                    str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()
                },
            }
        )
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        try:
            os.rename(tmp, target)
        except OSError:
            if not cache_complete(target):  # not a lost race with another process: a real error
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def cache_complete(folder: Path) -> bool:
    """Every file of the cache is there with the size meta.json recorded."""
    if not all((folder / f).is_file() for f in _CACHE_FILES):
        return False
    try:
        files = json.loads((folder / "meta.json").read_text())["files"]
        return all((folder / rel).is_file() and (folder / rel).stat().st_size == size for rel, size in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def ensure_cache(spec: GgufModel, cache_dir: Path | None = None) -> Path:
    """The cache folder for the installed GGUF, built on first use (or rebuilt if it is incomplete)."""
    sha, write_gguf = spec.locate()
    root = cache_dir_of(spec, cache_dir)
    target = root / f"{sha[:16]}-v{CACHE_VERSION}"
    if cache_complete(target):
        return target
    if target.exists():  # damaged (e.g. a file deleted by hand): move aside, then rebuild
        trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.broken-", dir=root))
        try:
            os.rename(target, trash / "old")
        except OSError:
            pass
        shutil.rmtree(trash, ignore_errors=True)
    _build_cache(spec, write_gguf, target, sha)
    if not cache_complete(target):
        raise DataError(f"{spec.title} cache at {target} is incomplete after building it; delete the folder and retry")
    return target


# -------------------------------------------------------------------------------------------------------- loading
def _load_hf(folder: Path) -> PreTrainedModel:
    set_offline()
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, local_files_only=True)
    return model.eval()


def load_hf(spec: GgufModel, cache_dir: Path | None = None) -> PreTrainedModel:
    """The dequantized HF model (float32, CPU, eval) from the cache; used for cross-checks."""
    return _load_hf(ensure_cache(spec, cache_dir))


def load_tokenizer(spec: GgufModel, bos_token_id: int | None = None, cache_dir: Path | None = None):
    """The cached tokenizer with ``bos_token`` = special token ``bos_token_id`` (None: the GGUF's own), BOS added."""
    return _load_tokenizer(spec, ensure_cache(spec, cache_dir) / "tokenizer", bos_token_id)


def _load_tokenizer(spec: GgufModel, folder: Path, bos_token_id: int | None) -> PreTrainedTokenizerBase:
    set_offline()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, add_bos_token=True)
    special = {i: t.content for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    if bos_token_id is None:
        bos_token_id = tokenizer.bos_token_id
    elif isinstance(bos_token_id, bool) or not isinstance(bos_token_id, int) or bos_token_id not in special:
        named = ", ".join(f"{i} = {special[i]}" for i in sorted(special)[:3])
        raise ParamError(
            f"bos_token_id = {bos_token_id!r} is not allowed: must be the id of a {spec.title} special token "
            f"({named}, ...)"
        )
    elif bos_token_id != tokenizer.bos_token_id:
        tokenizer = AutoTokenizer.from_pretrained(
            folder, local_files_only=True, bos_token=special[bos_token_id], add_bos_token=True
        )
    if tokenizer.bos_token_id != bos_token_id or tokenizer("a")["input_ids"][0] != bos_token_id:
        raise RuntimeError(f"{spec.title} tokenizer does not prepend BOS id {bos_token_id} (transformers change?)")
    return tokenizer


def load(spec: GgufModel, bos_token_id: int | None = None, cache_dir: Path | None = None) -> HookedTransformer:
    """The model as a float32 CPU ``HookedTransformer`` in eval mode, ``requires_grad`` off, BOS = ``bos_token_id``.

    ``model.to_tokens(text)`` puts the BOS at position 0 (``prepend_bos=False`` for raw ids). The first call builds
    the cache (module doc); later calls read the processed TransformerLens weights (seconds).
    """
    folder = ensure_cache(spec, cache_dir)  # first: a missing package fails fast, before the heavy imports
    import safetensors.torch
    from transformer_lens import HookedTransformer
    from transformers import AutoConfig

    tokenizer = _load_tokenizer(spec, folder / "tokenizer", bos_token_id)
    cfg = spec.tl_config(AutoConfig.from_pretrained(folder, local_files_only=True))
    cfg.normalization_type = "RMSPre"  # what fold_ln made of the RMS norms before the weights were saved
    model = HookedTransformer(cfg, tokenizer=tokenizer, default_padding_side="right")
    model.load_state_dict(safetensors.torch.load_file(str(folder / TL_FILE)), strict=True, assign=True)
    model.eval()
    model.requires_grad_(False)
    if model.to_tokens("a")[0, 0].item() != tokenizer.bos_token_id:
        raise RuntimeError(f"{spec.title}: TransformerLens does not prepend the requested BOS")
    return model
