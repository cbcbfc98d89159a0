"""Load the model that params.yaml selects: gelu-4l from the Hub (the default), or an offline model.

gelu-4l is loaded exactly as the authors did (docs/methods.md §1, §8), with every processing flag written out in
params; any other TransformerLens model is loaded the same way from a params entry with `loader: hub`. When the
Hub cannot be reached the loader stops within `hub_timeout_s` with one line naming the offline models, instead of
hanging on retries.
"""
from __future__ import annotations

import torch
from transformer_lens import HookedTransformer

from erasure.models.hub import require_hub
from erasure.params.load import Params
from erasure.params.model_entries import HubModel


def load_from_hub(cfg: HubModel) -> HookedTransformer:
    """HookedTransformer.from_pretrained with the processing flags of params (gelu-4l: the authors'), float32, CPU."""
    require_hub(cfg.hf_repo, cfg.tl_name, cfg.hub_timeout_s)
    return HookedTransformer.from_pretrained(
        cfg.tl_name,
        fold_ln=cfg.fold_ln,
        center_writing_weights=cfg.center_writing_weights,
        center_unembed=cfg.center_unembed,
        fold_value_biases=cfg.fold_value_biases,
        refactor_factored_attn_matrices=cfg.refactor_factored_attn_matrices,
        device="cpu",
        dtype=torch.float32,
    )


def load_model(params: Params) -> HookedTransformer:
    """The selected model in eval mode, float32, CPU, with `.tokenizer` set."""
    cfg = params.entry
    loader = cfg.loader
    if loader == "hub":
        model = load_from_hub(cfg)
    elif loader == "planted":
        from erasure.models.planted import build_planted_model

        model = build_planted_model(seed=cfg.seed)
    else:
        from erasure.models.smollm2 import load_smollm2

        model = load_smollm2(bos_token_id=cfg.bos_token_id)
    torch.set_grad_enabled(False)
    return model.eval()


def bos_token_id(params: Params, model: HookedTransformer) -> int:
    """The id at position 0 of every prompt: stated in params where the tokenizer's own BOS is not used."""
    stated = params.entry.bos_token_id
    return model.tokenizer.bos_token_id if stated is None else stated
