"""Every forward pass of the pipeline, in the activations stage: the model is loaded once and read by no other stage.

1. One clean pass over the prompt set (erasure.analysis.clean_pass) feeds discovery's scan and, when the writer
   and erasers are named in params, the activation tables, whose patched run starts at the first patched layer.
   The clean hooks of discovery's V-composition prompts are kept from it when they fit in `compute.memory_gb`.
2. Discovery concludes (ranking, erasers, the V-composition test on the kept prompts).
3. With `auto` roles the writer is discovery's choice, known only after the whole scan: a second clean pass makes
   the tables (SmolLM2, gpt2-small; the paper's models name their roles and need one). When discovery selects
   nothing, a fallback writer with no erasers (erasure.analysis.roles).
4. Paper Fig 5's adversarial prompts and resampled passes.
Figure stages read what this writes (data/activations, data/discovery_atlas.npz, metrics/discovery.json,
metrics/fig5_adversarial.json), never the model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Int
from transformer_lens import HookedTransformer

from erasure.analysis.activations import TablePass
from erasure.analysis.clean_pass import clean_pass
from erasure.analysis.discovery.discover import DiscoveryPass, DiscoveryResult, subset_nbytes
from erasure.analysis.fig5 import analyse_prompt, check_prompts, prompt_specs, resampled_bootstrap, strip_values
from erasure.analysis.roles import discovered_roles, named_roles
from erasure.params.load import Params
from erasure.paths import METRICS


@dataclass
class Passes:
    discovery: DiscoveryResult
    tables_meta: dict  # data/activations/meta.json, before the stage adds the model and prompt keys
    fig5: dict  # metrics/fig5_adversarial.json
    seconds: dict[str, float]  # forward passes, each consumer, discovery's conclusion, the tables pass, Fig 5
    subset_kept: bool  # discovery's V-comp prompts kept from the clean pass (else run again)


def run_passes(
    model: HookedTransformer, tokens: Int[torch.Tensor, "n p"], params: Params, tables_dir: Path, bos_id: int
) -> Passes:
    """Discovery, the activation tables (written into tables_dir) and Fig 5 from the fewest forward passes."""
    n, p = tokens.shape
    act, dp = params.activations, params.discovery
    check_prompts(model, params.fig5, bos_id, p)  # Fig 5 comes last: what it refuses, refused first
    budget = int(params.compute.memory_gb * 2**30)
    keep = subset_nbytes(model, dp, n, p) <= budget
    discovery = DiscoveryPass(model, dp, params.stats, n, p, keep_subset=keep)
    consumers: list = [discovery]
    tables = None
    roles = named_roles(params)
    if roles is not None:
        tables = TablePass(model, roles, n, p, tables_dir, act.n_dla_prompts, params.fig4)
        consumers.append(tables)
    seconds = clean_pass(model, tokens, act.batch_size, consumers, desc="activations: clean pass")
    t0 = time.perf_counter()
    found = discovery.conclude(
        tokens, act.batch_size, model_name=params.model,
        params_writer=roles.writer.name if roles else None,
        params_erasers=[e.name for e in roles.erasers] if roles else None,
    )
    seconds["discovery_conclude"] = time.perf_counter() - t0
    seconds |= {f"discovery_{k}": v for k, v in discovery.seconds.items()}
    if tables is None:
        roles = discovered_roles(params, found.record, str(METRICS["discovery"]))
        tables = TablePass(model, roles, n, p, tables_dir, act.n_dla_prompts, params.fig4)
        t0 = time.perf_counter()
        clean_pass(model, tokens, act.batch_size, [tables], desc="activations: tables pass")
        seconds["tables_pass"] = time.perf_counter() - t0
    meta = tables.finish(model.tokenizer)
    t0 = time.perf_counter()
    fig5 = fig5_metrics(model, tokens, roles.writer, params, bos_id, budget)
    seconds["fig5"] = time.perf_counter() - t0
    return Passes(found, meta, fig5, seconds, keep)


def fig5_metrics(model, rows, writer, params: Params, bos_id: int, budget_bytes: int) -> dict:
    """metrics/fig5_adversarial.json: every adversarial prompt of params, its writer and heads clean and
    resampled."""
    settings = params.fig5
    specs = prompt_specs(settings, params.entry.fig5_comparison_heads)
    torch.manual_seed(settings.seed)
    prompts = {spec.key: strip_values(analyse_prompt(model, spec, writer, rows, settings, params.stats, bos_id,
                                                     budget_bytes))
               for spec in specs}
    return {"model": params.model, "bootstrap": resampled_bootstrap(params.stats), "prompts": prompts}
