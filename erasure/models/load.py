"""Load the model that params.yaml selects: gelu-4l from the Hub or its local cache (the default), or an offline model.

Hub models are loaded by hand from huggingface_hub's cache API instead of `HookedTransformer.from_pretrained`, because
TransformerLens lists a NeelNanda repo's files online (`list_repo_files`, no cache fallback) before loading it, so a
model downloaded once could never load offline. The steps are TransformerLens's own: its config function, the
state dict it would load (the repo file ending in `final.pth`), `load_and_process_state_dict` with the processing
flags written out in params (gelu-4l: the authors'), and its tokenizer settings. HF-format repos (gpt2-small) are
read from the same cache by `transformers` and handed to `from_pretrained` as `hf_model`.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from erasure.errors import DataError, ParamError
from erasure.io import sha256_file
from erasure.models import hub
from erasure.models.device import compute_device
from erasure.params.load import Params
from erasure.params.model_entries import HubModel

NEEL_PREFIXES = ("NeelNanda/", "ArthurConmy/", "Baidicoot/")  # TransformerLens's own test for its .pth repos
HF_MODEL_FILES = ["*.json", "*.safetensors", "*.txt", "*.model"]

if TYPE_CHECKING:  # torch and TransformerLens load only after the Hub's repos resolved (a missing one fails fast)
    from transformer_lens import HookedTransformer


@dataclass
class LoadedFrom:
    """Which bytes a Hub model came from: resolved commits and the weights' sha256 (recorded in the metrics)."""

    repos: dict[str, dict] = field(default_factory=dict)

    def add(self, role: str, repo_id: str, revision, **extra) -> None:
        self.repos[role] = {"repo": repo_id, "commit": revision.resolved, **extra}


def checked_state_dict(path: Path, expected: str | None, param: str) -> tuple[dict, str]:
    """Hash the weights file before unpickling it; a mismatch with the pinned hash loads nothing."""
    import torch

    actual = sha256_file(path)
    if expected is not None and actual != expected:
        raise DataError(f"{path.name} has sha256 {actual}, not the {param} = {expected} pinned in params.yaml: "
                        "the file differs from the pinned one; nothing was loaded")
    if expected is None:
        print(f"note: {path.name} sha256 = {actual}; pin it with `{param}: {actual}` in params.yaml", file=sys.stderr)
    return torch.load(path, map_location="cpu", weights_only=True), actual


def load_tokenizer(repo_id: str, revision: str | None, loaded: LoadedFrom, role: str = "tokenizer"):
    """TransformerLens's tokenizer call (add_bos_token=True) on the cached snapshot of the tokenizer repo."""
    from transformers import AutoTokenizer

    rev = hub.resolve(repo_id, revision, "the tokenizer")
    folder = hub.snapshot(repo_id, rev, "the tokenizer")
    loaded.add(role, repo_id, rev)
    return AutoTokenizer.from_pretrained(str(folder), add_bos_token=True)


def load_neel_model(name: str, cfg: HubModel, loaded: LoadedFrom) -> HookedTransformer:
    """A TransformerLens-format repo (config.json + *final.pth), processed as `from_pretrained` would."""
    repo, base = cfg.hf_repo, f"models.{name}"
    what = f"{name} weights"
    rev = hub.resolve(repo, cfg.revision, what)
    folder = hub.snapshot(repo, rev, what, allow_patterns=["config.json", "*final.pth"])
    finals = [f for f in hub.cached_file_list(repo, rev, what) if f.endswith("final.pth")]
    if not finals:
        raise DataError(f"{repo} has no file ending in final.pth (TransformerLens's weights file)")

    import torch
    from transformer_lens import HookedTransformer
    from transformer_lens import loading_from_pretrained as tl_loading

    tl_cfg = tl_loading.get_pretrained_model_config(
        cfg.tl_name, fold_ln=cfg.fold_ln, device="cpu", dtype=torch.float32, revision=rev
    )
    state_dict, digest = checked_state_dict(folder / finals[0], cfg.weights_sha256, f"{base}.weights_sha256")
    loaded.add("model", repo, rev, weights_file=finals[0], weights_sha256=digest)
    state_dict = {k: v.to(torch.float32) for k, v in state_dict.items()}
    if tl_cfg.original_architecture == "neel-solu-old":
        state_dict = tl_loading.convert_neel_solu_old_weights(state_dict, tl_cfg)
    elif tl_cfg.original_architecture == "mingpt":
        state_dict = tl_loading.convert_mingpt_weights(state_dict, tl_cfg)
    tokenizer = None
    if tl_cfg.tokenizer_name is not None:
        tokenizer = load_tokenizer(tl_cfg.tokenizer_name, cfg.tokenizer_revision, loaded)
    model = HookedTransformer(tl_cfg, tokenizer, move_to_device=False)
    model.load_and_process_state_dict(
        state_dict,
        fold_ln=cfg.fold_ln,
        center_writing_weights=cfg.center_writing_weights,
        center_unembed=cfg.center_unembed,
        fold_value_biases=cfg.fold_value_biases,
        refactor_factored_attn_matrices=cfg.refactor_factored_attn_matrices,
    )
    return model


def load_hf_model(name: str, cfg: HubModel, loaded: LoadedFrom) -> HookedTransformer:
    """An HF-format repo: `transformers` reads the cached snapshot, TransformerLens converts and processes it."""
    repo, what = cfg.hf_repo, f"{name} weights"
    rev = hub.resolve(repo, cfg.revision, what)
    folder = hub.snapshot(repo, rev, what, allow_patterns=HF_MODEL_FILES)
    loaded.add("model", repo, rev)

    import torch
    from transformer_lens import HookedTransformer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf_model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), add_bos_token=True)
    with hub.hub_errors(what, repo):
        return HookedTransformer.from_pretrained(
            cfg.tl_name,
            hf_model=hf_model,
            tokenizer=tokenizer,
            fold_ln=cfg.fold_ln,
            center_writing_weights=cfg.center_writing_weights,
            center_unembed=cfg.center_unembed,
            fold_value_biases=cfg.fold_value_biases,
            refactor_factored_attn_matrices=cfg.refactor_factored_attn_matrices,
            device="cpu",
            dtype=torch.float32,
            revision=rev,
        )


def load_from_hub(name: str, cfg: HubModel, loaded: LoadedFrom) -> HookedTransformer:
    """A TransformerLens model named in params (`loader: hub`), float32, CPU, online or from the cache."""
    neel = cfg.hf_repo.startswith(NEEL_PREFIXES)
    model = load_neel_model(name, cfg, loaded) if neel else load_hf_model(name, cfg, loaded)
    if hub.offline_forced():
        print(f"note: {name} loaded from the local Hugging Face cache ({hub.offline_reason()})", file=sys.stderr)
    return model


def load_model(params: Params, loaded: LoadedFrom | None = None) -> HookedTransformer:
    """The selected model in eval mode, on `compute.device` in `compute.dtype`, with `.tokenizer` set.

    Every loader builds it float32 on the CPU (their processing is float32, as TransformerLens's own); it is then
    moved and cast once, so a float32 CPU run is the loaders' model unchanged. `loaded` collects its Hub commits.
    """
    import torch

    device = compute_device(params.compute.device, params.compute.dtype)
    cfg = params.entry
    if cfg.loader == "hub":
        model = load_from_hub(params.model, cfg, loaded if loaded is not None else LoadedFrom())
    elif cfg.loader == "planted":
        from erasure.models.planted import build_planted_model

        model = build_planted_model(seed=cfg.seed)
    else:  # gguf: one loading path, the model's own settings
        from erasure.models import gguf

        model = gguf.load(_gguf_spec(params), bos_token_id=cfg.bos_token_id)
    torch.set_grad_enabled(False)
    check_shape(params, model)
    dtype = getattr(torch, params.compute.dtype)
    if dtype != torch.float32:
        model = model.to(dtype, print_details=False)
    if device.type != "cpu":
        model = model.to(device, print_details=False)
    return model.eval()


def check_shape(params: Params, model: HookedTransformer) -> None:
    """The loaded model has the shape params were checked against (components, token ids, seq_len <= n_ctx)."""
    stated = params.shape.model_dump()
    actual = {key: getattr(model.cfg, key) for key in stated}
    if actual != stated:
        where = (f"models.{params.model}.shape" if isinstance(params.entry, HubModel) and params.entry.shape
                 else f"the known shape of {params.model}")
        raise ParamError(f"{where} = {stated} does not match the loaded model: {actual}")


def _gguf_spec(params: Params):
    """The GGUF model behind the selected entry (loader gguf)."""
    if params.model == "gemma3-270m":
        from erasure.models.gemma3 import SPEC
    else:
        from erasure.models.smollm2 import SPEC
    return SPEC


def model_tokenizer(params: Params, loaded: LoadedFrom | None = None):
    """The selected model's tokenizer (`model.tokenizer` of load_model), without building the model where the
    tokenizer stands alone (planted-4l, the GGUF models). A Hub model is loaded whole: its commit and the weights'
    sha256 are recorded with the prompts (metrics/inputs.json), and TransformerLens names its tokenizer."""
    cfg = params.entry
    if cfg.loader == "hub":
        return load_model(params, loaded).tokenizer
    if cfg.loader == "planted":
        from erasure.models.planted import planted_tokenizer

        tokenizer = planted_tokenizer()
    else:
        from erasure.models import gguf

        tokenizer = gguf.load_tokenizer(_gguf_spec(params), bos_token_id=cfg.bos_token_id)
    # documents are tokenized whole and cut into rows of seq_len after: no "longer than the maximum" warning (which
    # TransformerLens's import silences for load_model's tokenizer); nothing is truncated either way
    tokenizer.model_max_length = int(1e30)
    return tokenizer


def bos_token_id(params: Params, tokenizer) -> int:
    """The id at position 0 of every prompt: stated in params where the tokenizer's own BOS is not used."""
    stated = params.entry.bos_token_id
    return tokenizer.bos_token_id if stated is None else stated
