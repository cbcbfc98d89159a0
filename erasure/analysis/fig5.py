"""Paper Fig 5: adversarial prompts, and how a head's DLA reacts when its input is resampled.

For each prompt (tokenized with BOS), the direction is a logit difference at the last position: the clean model's
top-2 (`fig5.direction: top2`, the authors' code) or the stated pair (`pair`, the paper's text); both logit
differences and the writer's clean DLA along both are reported either way. A pair is a direction only when each
side is one token of the model's tokenizer and the two differ: with `direction: pair` anything else is a one-line
error naming the prompt; with `top2` (the pair only reported) the model still runs, `paper_pair.single_token`
records which side is not one token, and the pair's logit difference and DLA are null, never computed from a
truncated pair. A head's clean DLA is DLA(z_h W_O[h])
at the last position with the clean sigma_f. Its resampled DLA (docs/methods.md §4.5): the head's input at the LAST
position only -- its query, key and value there -- is
replaced by the input that unrelated prompts of the same length give at that position (rows of data/prompts
truncated to the prompt length). Other positions and other heads are untouched, and sigma_f stays clean.
A writer that is an MLP gets the same test on its own input: the ln2-normalised residual entering its MLP
(resid_mid of its layer) at the last position is replaced by the unrelated rows' (the MLP acts per position, so
that is all it reads there). The heads shown beside the writer: the comparison head of the model's entry
(`fig5_comparison_heads`: the authors' hand-picked one per prompt, or `auto` = the head of second-largest clean
|DLA| other than the writer) and the auto head (the largest).

Implementation: the authors' hook. With `use_split_qkv_input`, `blocks.L.ln1` normalizes one residual copy
per head (q) and per KV head (k, v); we overwrite `blocks.L.ln1.hook_normalized[:, -1, h]` on all three calls
with the unrelated row's normalized input. For grouped-query attention, keys/values have one copy per KV group,
so `ungroup_grouped_query_attention` is switched on for the run (one copy per head) and only head h changes.
Only the head's own output at the last position matters for its DLA, and layers before L do not see the patch,
so the patched runs execute block L alone, starting from the prompt's clean residual.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int

from erasure.errors import DataError, ParamError
from erasure.mechanism.bootstrap import PromptBootstrap, add_quantile_intervals, bootstrap_record
from erasure.mechanism.dla import at_least_float32, centres, dla, logit_diff_direction
from erasure.mechanism.hooks import (
    FINAL_SCALE,
    attn_out_hook,
    component_output,
    head_hooks,
    head_outputs,
    ln1_normalized_hook,
    ln2_normalized_hook,
    mlp_out_hook,
)
from erasure.mechanism.names import Component
from erasure.mechanism.stats import summarize
from erasure.params.sections import Fig5, Stats
from erasure.progress import progress

RESAMPLED_STATS = ("median", "q25", "q75", "q12_5", "q87_5")


@dataclass(frozen=True)
class PromptSpec:
    key: str
    text: str
    pair: tuple[str, str]
    comparison_head: Component | None  # None: auto (the runner-up head by clean |DLA|)


def prompt_specs(fig5: Fig5, comparison_heads: list[Component] | str) -> list[PromptSpec]:
    """The adversarial prompts of params, each with the model entry's comparison head (None when `auto`)."""
    heads = [None] * len(fig5.prompts) if comparison_heads == "auto" else comparison_heads
    return [PromptSpec(key, p.text, (p.pair[0], p.pair[1]), head)
            for (key, p), head in zip(fig5.prompts.items(), heads, strict=True)]


def tokenize_prompt(model, text: str, bos_id: int) -> Int[torch.Tensor, "1 n"]:
    """BOS + the text's tokens (equal to `model.to_tokens(text)` when the tokenizer's BOS is bos_id)."""
    body = model.to_tokens(text, prepend_bos=False)[0]
    return torch.cat([torch.tensor([bos_id], device=body.device), body]).unsqueeze(0).long()


def target_ids(model, token: str) -> tuple[list[int], bool]:
    """Token ids of a target string; the bool says whether it is a single token."""
    ids = model.to_tokens(token, prepend_bos=False)[0].tolist()
    return ids, len(ids) == 1


@dataclass
class CleanRun:
    logits: Float[torch.Tensor, " v"]          # last-position logits, b_U included
    scale_final: Float[torch.Tensor, ""]        # clean sigma_f at the last position
    head_out: Float[torch.Tensor, "l h d"]      # every head's write (z_h W_O[h], post-norm models: normalised)
    mlp_out: Float[torch.Tensor, "l d"]         # every MLP's write (hook_mlp_out)


def clean_run(model, tokens: Int[torch.Tensor, "1 n"]) -> CleanRun:
    n_layers = model.cfg.n_layers
    names = (set().union(*(head_hooks(model, l) for l in range(n_layers))) | {FINAL_SCALE}
             | {mlp_out_hook(l) for l in range(n_layers)})
    logits, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
    outs = torch.stack([head_outputs(model, l, cache)[0, -1] for l in range(n_layers)])
    mlps = torch.stack([cache[mlp_out_hook(l)][0, -1] for l in range(n_layers)])
    return CleanRun(logits=logits[0, -1].float(), scale_final=cache[FINAL_SCALE][0, -1].reshape(()),
                    head_out=outs, mlp_out=mlps)


def clean_head_dla(
    run: CleanRun, direction: Float[torch.Tensor, " d"], centre: bool = True
) -> Float[torch.Tensor, "l h"]:
    """Clean DLA of every head at the last position."""
    return dla(run.head_out, run.scale_final.expand(run.head_out.shape[:2]), direction, centre)


def clean_dla(run: CleanRun, comp: Component, direction: Float[torch.Tensor, " d"], centre: bool = True) -> float:
    """Clean DLA of one head or MLP at the last position."""
    out = run.head_out[comp.layer, comp.head] if comp.is_head else run.mlp_out[comp.layer]
    return float(dla(out, run.scale_final, direction, centre))


def ranked_heads(clean: Float[torch.Tensor, "l h"], exclude: Component) -> list[Component]:
    """Every head by clean |DLA|, largest first, without `exclude` (an MLP writer excludes no head)."""
    order = torch.argsort(clean.abs().flatten(), descending=True, stable=True).tolist()
    heads = [Component(i // clean.shape[1], i % clean.shape[1]) for i in order]
    return [h for h in heads if h != exclude]


def auto_head(clean: Float[torch.Tensor, "l h"], exclude: Component) -> Component:
    """The head with the largest clean |DLA| other than `exclude`."""
    return ranked_heads(clean, exclude)[0]


def comparison_head(clean: Float[torch.Tensor, "l h"], exclude: Component, named: Component | None) -> Component:
    """The named comparison head, or (auto) the head of second-largest clean |DLA| other than `exclude`: the
    largest is the auto head, shown anyway. A model with a single head besides the writer repeats it."""
    if named is not None:
        return named
    ranked = ranked_heads(clean, exclude)
    return ranked[1] if len(ranked) > 1 else ranked[0]


@contextmanager
def split_qkv(model):
    """Per-head q/k/v inputs (and per-head k/v for grouped-query attention) for the duration of the block."""
    cfg = model.cfg
    saved = (cfg.use_split_qkv_input, getattr(cfg, "ungroup_grouped_query_attention", False))
    cfg.use_split_qkv_input = True
    if getattr(cfg, "n_key_value_heads", None) is not None:
        cfg.ungroup_grouped_query_attention = True
    try:
        yield
    finally:
        cfg.use_split_qkv_input = saved[0]
        if getattr(cfg, "n_key_value_heads", None) is not None:
            cfg.ungroup_grouped_query_attention = saved[1]


def input_hook(comp: Component) -> str:
    """The normalised input a component reads: ln1's for a head (its q, k, v), ln2's for an MLP."""
    return ln1_normalized_hook(comp.layer) if comp.is_head else ln2_normalized_hook(comp.layer)


def source_inputs(
    model, sources: Int[torch.Tensor, "r n"], comps: list[Component], batch_size: int
) -> dict[str, torch.Tensor]:
    """Each component's normalised input at the last position of each unrelated row: {input hook: (r, d)}."""
    names = sorted({input_hook(c) for c in comps})
    out: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    last: dict[str, torch.Tensor] = {}

    def grab(x, hook):  # ln1 runs once each for q, k and v: the three inputs are equal without a patch
        last[hook.name] = x[:, -1].detach().clone()

    hooks = [(name, grab) for name in names]
    stop = max(c.layer for c in comps) + 1
    for start in range(0, sources.shape[0], batch_size):
        model.run_with_hooks(sources[start : start + batch_size], fwd_hooks=hooks, stop_at_layer=stop)
        for name in names:
            out[name].append(last.pop(name))
    return {n: torch.cat(v) for n, v in out.items()}


def resampled_mlp_out(
    model, tokens: Int[torch.Tensor, "1 n"], mlp: Component, normalized: Float[torch.Tensor, "r d"],
    batch_size: int,
) -> Float[torch.Tensor, "r d"]:
    """The MLP's output at the last position when its last-position input (ln2's output) is each row of
    `normalized`: block L alone, from the prompt's clean residual (its attention sees no change)."""
    L = mlp.layer
    outs: list[torch.Tensor] = []
    state: dict[str, torch.Tensor] = {}

    def overwrite(x, hook):
        x = x.clone()
        x[:, -1] = state["src"]
        return x

    def record(x, hook):
        outs.append(x[:, -1].detach().clone())

    hooks = [(ln2_normalized_hook(L), overwrite), (mlp_out_hook(L), record)]
    resid_pre = model(tokens, stop_at_layer=L)
    for start in range(0, normalized.shape[0], batch_size):
        state["src"] = normalized[start : start + batch_size]
        batch = resid_pre.expand(state["src"].shape[0], -1, -1)
        model.run_with_hooks(batch, fwd_hooks=hooks, start_at_layer=L, stop_at_layer=L + 1)
    return torch.cat(outs)


def resampled_head_out(
    model, tokens: Int[torch.Tensor, "1 n"], head: Component, normalized: Float[torch.Tensor, "r d"], batch_size: int,
    desc: str | None = None,
) -> Float[torch.Tensor, "r d"]:
    """The head's output at the last position when its last-position input (q, k, v) is each row of `normalized`."""
    L, h = head.layer, head.head
    n_heads = model.cfg.n_heads
    outs: list[torch.Tensor] = []
    state: dict[str, torch.Tensor] = {}

    def overwrite(x, hook):
        if x.dim() != 4 or x.shape[2] != n_heads:
            raise RuntimeError(f"{hook.name} has shape {tuple(x.shape)}: expected one copy per head ({n_heads})")
        x = x.clone()
        x[:, -1, h] = state["src"]
        return x

    store: dict[str, torch.Tensor] = {}

    def save(x, hook):
        store[hook.name] = x

    def record(x, hook):  # hook_attn_out runs after hook_z (and the post-norm scale): the head's write is known
        outs.append(component_output(model, store, head)[:, -1])

    hooks = [(ln1_normalized_hook(L), overwrite), *[(name, save) for name in head_hooks(model, L)],
             (attn_out_hook(L), record)]
    # Layers before L do not see the patch: run them once, then only block L per batch of resampled inputs.
    resid_pre = model(tokens, stop_at_layer=L)  # (1, n, d): the clean residual entering layer L
    starts = range(0, normalized.shape[0], batch_size)
    with split_qkv(model):
        for start in (starts if desc is None else progress(starts, desc=desc, unit="batch", leave=False)):
            state["src"] = normalized[start : start + batch_size]
            batch = resid_pre.expand(state["src"].shape[0], -1, -1)
            model.run_with_hooks(batch, fwd_hooks=hooks, start_at_layer=L, stop_at_layer=L + 1)
    return torch.cat(outs)


def stated_pair(model, key: str, pair: tuple[str, str]) -> tuple[list[int], list[bool]]:
    """The first token id of each side of a prompt's stated pair and whether each side is one token. The pair must
    be a direction (both single, different tokens), whatever `fig5.direction` is (a ParamError naming the prompt
    otherwise): under `top2` the pair's logit difference is reported too, and a malformed value is an error in
    any mode (the user typed it for a reason)."""
    pair_ids, single = zip(*(target_ids(model, t) for t in pair))
    used = [ids[0] for ids in pair_ids]
    if not (all(single) and used[0] != used[1]):
        param = f"fig5.prompts.{key}.pair = {list(pair)!r}"
        why = ("each side must be one token of the model's tokenizer and the two must differ "
               f"(got ids {[list(i) for i in pair_ids]})")
        raise ParamError(f"{param} is not allowed: {why}")
    return used, list(single)


def check_prompts(model, settings: Fig5, bos_id: int, seq_len: int) -> None:
    """What analyse_prompt would refuse, refused before the activations stage's long pass: a stated pair the
    direction cannot use, a prompt longer than the prompt set's rows."""
    for key, prompt in settings.prompts.items():
        stated_pair(model, key, tuple(prompt.pair))
        check_length(tokenize_prompt(model, prompt.text, bos_id).shape[1], seq_len, key)


def check_length(length: int, seq_len: int, key: str) -> None:
    if seq_len < length:
        raise ParamError(f"fig5.prompts.{key}.text is {length} tokens (BOS included) but the prompt rows are only "
                         f"{seq_len} (prompts.seq_len of the model): shorten the text or raise seq_len")


def copies_per_pass(budget_bytes: int, n_tokens: int, cfg) -> int:
    """Resampled copies of an n_tokens prompt per forward pass that fit in `budget_bytes` (params
    `compute.memory_gb`). Per copy, a rough upper bound of what one block with split q/k/v inputs holds at once
    (a residual copy per head for each of q, k and v, their projections, scores and pattern, the MLP's hidden
    layer), doubled for TransformerLens's transient copies."""
    h, d, dh, dm = cfg.n_heads, cfg.d_model, cfg.d_head, cfg.d_mlp or 0
    itemsize = torch.empty((), dtype=cfg.dtype).element_size()
    per_copy = 2 * itemsize * n_tokens * (6 * h * d + 4 * h * dh + 2 * dm + 4 * d + 2 * h * n_tokens)
    return max(1, budget_bytes // per_copy)


def resampled_bootstrap(stats: Stats) -> dict:
    """The `bootstrap` record of metrics/fig5_adversarial.json: its intervals resample the unrelated rows."""
    return bootstrap_record(stats.level, stats.n_bootstrap, stats.bootstrap_seed, "resampled row")


def summarize_resampled(values: np.ndarray, stats: Stats) -> dict:
    """The resampled DLA's median and bands, with intervals from a bootstrap over the resampled rows (one value
    per unrelated row: the rows are this figure's sampling unit)."""
    values = np.asarray(values, dtype=np.float64)
    s = summarize(values)
    out = {k: float(s[k]) for k in RESAMPLED_STATS}
    boot = PromptBootstrap.of(values.size, stats)
    add_quantile_intervals(out, values[:, None], boot)
    return out


def select_sources(
    rows: Int[torch.Tensor, "N seq"], length: int, n_resample: int, seed: int, key: str
) -> Int[torch.Tensor, "r n"]:
    """n_resample rows of the prompt set (seeded choice; all rows if fewer), truncated to `length` tokens."""
    check_length(length, rows.shape[1], key)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(rows.shape[0], generator=g)[:n_resample]
    return rows[order, :length].long()


def analyse_prompt(
    model, spec: PromptSpec, writer: Component, rows: Int[torch.Tensor, "N seq"], settings: Fig5, stats: Stats,
    bos_id: int, budget_bytes: int,
) -> dict:
    """Every number of metrics/fig5_adversarial.json for one prompt; resampled copies batched within the budget."""
    tokens = tokenize_prompt(model, spec.text, bos_id)
    batch_size = copies_per_pass(budget_bytes, tokens.shape[1], model.cfg)
    sources = select_sources(rows, tokens.shape[1], settings.n_resample, settings.seed, spec.key).to(tokens.device)
    run = clean_run(model, tokens)
    top2_ids = [int(t) for t in torch.topk(run.logits, 2).indices]
    used, single = stated_pair(model, spec.key, spec.pair)
    paper_pair = {
        "strings": list(spec.pair),
        "ids": used,
        "used_tokens": [model.tokenizer.decode([i]) for i in used],
        "single_token": list(single),
        "matches_top2": used == top2_ids,
    }
    W_U = at_least_float32(model.W_U.detach())
    directions = {"top2": top2_ids, "pair": used}
    chosen = directions[settings.direction]
    along = {name: logit_diff_direction(W_U, torch.tensor([ids], device=W_U.device))[0]
             for name, ids in directions.items()}
    direction = along[settings.direction]
    writer_clean = {name: clean_dla(run, writer, u, centres(model)) for name, u in along.items()}

    clean = clean_head_dla(run, direction, centres(model))
    auto = auto_head(clean, writer)
    compared = comparison_head(clean, writer, spec.comparison_head)
    comps = list(dict.fromkeys([writer, compared, auto]))
    normalized = source_inputs(model, sources, comps, batch_size)

    out = {}
    for comp in comps:
        if comp.is_head:
            resampled_out = resampled_head_out(
                model, tokens, comp, normalized[input_hook(comp)], batch_size, desc=f"{spec.key} {comp.name}"
            )
        else:
            resampled_out = resampled_mlp_out(model, tokens, comp, normalized[input_hook(comp)], batch_size)
        values = dla(resampled_out, run.scale_final.expand(resampled_out.shape[0]), direction, centres(model))
        values = values.detach().to("cpu", torch.promote_types(values.dtype, torch.float32)).numpy()
        if not np.isfinite(values).all():
            raise DataError(f"fig5 {spec.key}: {int((~np.isfinite(values)).sum())} of the {values.size} resampled "
                            f"DLA values of {comp.name} are NaN/inf (the model overflowed)")
        out[comp.name] = {"clean": clean_dla(run, comp, direction, centres(model)),
                          "resampled": summarize_resampled(values, stats), "_values": values}
    return {
        "text": spec.text,
        "top2": [model.tokenizer.decode([i]) for i in top2_ids],
        "top2_ids": top2_ids,
        "direction": settings.direction,
        "logit_diff": float(run.logits[chosen[0]] - run.logits[chosen[1]]),
        "top2_logit_diff": float(run.logits[top2_ids[0]] - run.logits[top2_ids[1]]),
        "paper_pair": paper_pair,
        "paper_pair_logit_diff": float(run.logits[used[0]] - run.logits[used[1]]),
        "writer_clean_dla": writer_clean,
        "writer": writer.name,
        "writer_input": "ln1 (q, k, v)" if writer.is_head else "ln2 (the MLP's input, resid_mid)",
        "comparison_head": compared.name,
        "comparison_source": "params" if spec.comparison_head is not None else "auto (second-largest |DLA|)",
        "auto_head": auto.name,
        "n_resample": int(sources.shape[0]),
        "heads": out,
    }


def strip_values(result: dict) -> dict:
    """The JSON-ready copy of analyse_prompt's result (drops the raw resampled values)."""
    res = dict(result)
    res["heads"] = {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")} for k, v in result["heads"].items()}
    return res
