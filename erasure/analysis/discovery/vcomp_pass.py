"""Pass 2 of discovery, on the first `n_vcomp_prompts` prompts: the V-composition test of each top writer's
erasers (clean vs V-patched PRs, exact quantiles), who erases the writer (heads vs MLPs), the centred persistence
control, and prompt-bootstrap intervals for the V-composition share and the heads/MLPs split.

The clean outputs of those prompts are made from the hooks the activations stage's one clean pass kept (when they
fit in `compute.memory_gb`) or from running them again (`recompute_subset`), batch for batch the same numbers.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
from jaxtyping import Float, Int
from transformer_lens import HookedTransformer

from erasure.analysis.discovery.layout import Layout, capture_outputs
from erasure.analysis.discovery.ranking import rounded
from erasure.analysis.discovery.scan import positions
from erasure.mechanism.bootstrap import PromptBootstrap, add_interval
from erasure.mechanism.hooks import component_output, ln1_scale_hook, output_hooks, resid_pre_hook, run_capture
from erasure.mechanism.vcomp import vcomp_patch_hooks
from erasure.params.sections import Discovery
from erasure.progress import Steps


def _quant(x: torch.Tensor, q: float) -> float | None:
    x = x[torch.isfinite(x)]
    return None if x.numel() == 0 else float(torch.quantile(x.double(), q))


def subset_hooks(layers: Iterable[int]) -> set[str]:
    """The clean hooks the V-patched runs start from: ln1's scale and the residual entering each layer."""
    return {ln1_scale_hook(l) for l in layers} | {resid_pre_hook(l) for l in layers}


def recompute_subset(
    model: HookedTransformer, tokens: Int[torch.Tensor, "n p"], layout: Layout, batch_size: int, layers: list[int]
) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """The subset's clean outputs, run again in the clean pass's batches (the same numbers as keeping them)."""
    for start in range(0, tokens.shape[0], batch_size):
        batch = tokens[start : start + batch_size].to(model.cfg.device)
        outs, _, store = capture_outputs(model, batch, layout, subset_hooks(layers))
        yield outs, store


def patch_layers_of(top: list[dict], layout: Layout) -> dict[str, list[int]]:
    """Per top writer, the layers of its head erasers (the V-patch's layers)."""
    return {r["name"]: sorted({layout.components[e["index"]].layer for e in r["erasers"]
                               if layout.components[e["index"]].is_head}) for r in top}


def vcomp_pass(
    model: HookedTransformer,
    subset: Iterable[tuple[torch.Tensor, dict[str, torch.Tensor]]],
    n: int,
    layout: Layout,
    dp: Discovery,
    boot: PromptBootstrap,
    top: list[dict],
    mean_out: torch.Tensor,
) -> None:
    """Clean vs V-patched eraser PRs and centred persistence for each top writer (results added in place).

    `subset`: per batch of the first n prompts, every component's clean output (b, p, n_comp, d) and the clean
    `subset_hooks` of the layers in `patch_layers_of(top)`; `boot`: the resamples of those n prompts.
    """
    patch_layers = patch_layers_of(top, layout)
    acc: dict[str, dict[str, list]] = {r["name"]: {"clean": [], "patched": [], "P": [], "Pc": [], "split": []}
                                       for r in top}
    is_head = torch.tensor([c.is_head for c in layout.components], device=mean_out.device)
    bar = Steps(total=n * (1 + sum(bool(v) for v in patch_layers.values())), desc="discover: V-comp", unit="run")
    p = 0
    for outs, store in subset:
        p = outs.shape[1]
        pos = positions(p, dp.include_bos)
        bar.update(outs.shape[0])
        flat = outs[:, pos].reshape(-1, layout.n, outs.shape[-1])
        for r in top:
            w = r["index"]
            o = outs[:, :, w]
            e_idx = [e["index"] for e in r["erasers"]]
            ow = flat[:, w]
            later = layout.after[w].to(flat)
            # persistence, exact on this subset; centred: PR(c - mean c, w - mean w) (means over non-BOS tokens)
            dw = ow - mean_out[w]
            centred = (torch.einsum("tnd,td->tn", flat, dw) - dw @ mean_out.T) / (dw * dw).sum(-1, keepdim=True)
            raw = _prs(flat, ow) * later
            for key, pr in (("P", raw), ("Pc", centred * later)):
                acc[r["name"]][key].append(1.0 + torch.cumsum(pr @ layout.segment.to(pr), -1))
            # what heads and MLPs took away by the checkpoint where the writer is most erased (full scan)
            upto = layout.own.to(is_head.device) <= layout.checkpoints.index(r["min_checkpoint"])
            acc[r["name"]]["split"].append(torch.stack([-(raw * (upto & is_head)).sum(-1),
                                                        -(raw * (upto & ~is_head)).sum(-1)], dim=-1))
            if not e_idx:
                continue
            acc[r["name"]]["clean"].append(_prs(flat[:, e_idx], ow))
            layers = patch_layers[r["name"]]
            if not layers:
                continue
            first, last = layers[0], max(layout.components[i].layer for i in e_idx)
            scales = {l: store[ln1_scale_hook(l)] for l in layers}
            erasers = [layout.components[i] for i in e_idx]
            after_patch = run_capture(
                model, store[resid_pre_hook(first)], set().union(*(output_hooks(model, e) for e in erasers)),
                vcomp_patch_hooks(model, o, scales, layers), start_at_layer=first, stop_at_layer=last + 1,
            )
            patched = torch.stack([component_output(model, after_patch, e) for e in erasers], dim=2)
            acc[r["name"]]["patched"].append(_prs(patched[:, pos].reshape(-1, len(e_idx), outs.shape[-1]), ow))
            bar.update(outs.shape[0])
    bar.close()
    ckpts = layout.checkpoints
    for r in top:
        a = acc[r["name"]]
        r["erased_by"] = _split(torch.cat(a["split"]), boot, r["min_checkpoint"])
        own = int(layout.own[r["index"]])
        curves = {}
        for key in ("P", "Pc"):
            P = torch.cat(a[key])
            curves[key] = {ckpts[own]: 1.0} | {ckpts[k]: _quant(P[:, k], 0.5) for k in range(own + 1, len(ckpts))}
        r["subset"] = {
            "n_prompts": n,
            "erasure": _erasure(curves["P"], r["window"]),
            "erasure_centred": _erasure(curves["Pc"], r["window"]),
            "persistence": {k: rounded(v) if v is not None else None for k, v in curves["P"].items()},
            "persistence_centred": {k: rounded(v) if v is not None else None for k, v in curves["Pc"].items()},
        }
        r["vcomp_layers"] = patch_layers[r["name"]]
        if not r["erasers"]:
            r["eraser_sum"] = None
            continue
        clean = torch.cat(a["clean"])
        patched = torch.cat(a["patched"]) if a["patched"] else None
        for j, e in enumerate(r["erasers"]):
            e["clean_median"] = rounded(_quant(clean[:, j], 0.5))
            e["patched_median"] = rounded(_quant(patched[:, j], 0.5)) if patched is not None else None
            e["vcomp_share"] = _share(e["clean_median"], e["patched_median"])
        s_clean = _quant(clean.sum(1), 0.5)
        s_patched = _quant(patched.sum(1), 0.5) if patched is not None else None
        r["eraser_sum"] = {"clean_median": rounded(s_clean),
                           "patched_median": rounded(s_patched) if s_patched is not None else None,
                           "vcomp_share": _share(s_clean, s_patched)}
        share_draws = np.array([]) if patched is None else _share_draws(clean.sum(1), patched.sum(1), boot)
        add_interval(r["eraser_sum"], "vcomp_share", share_draws, boot.level)


def _split(split: torch.Tensor, boot: PromptBootstrap, checkpoint: str) -> dict:
    """Medians (and intervals) of what the heads and the MLPs reading w took away from it by `checkpoint`.

    Per token: -sum of PR(c, w) over the heads (MLPs) written before the checkpoint; 1 - P_k = heads + MLPs
    token by token, but the medians of the parts need not add up to the median of the whole."""
    draws = boot.series_quantiles(boot.by_prompt(split.float().cpu().numpy()), [0.5])[0]  # (draws, heads | mlps)
    out = {"checkpoint": checkpoint}
    for j, who in enumerate(("heads", "mlps")):
        out[who] = {"median": rounded(_quant(split[:, j], 0.5))}
        add_interval(out[who], "median", draws[:, j], boot.level)
    return out


def _share_draws(clean: torch.Tensor, patched: torch.Tensor, boot: PromptBootstrap) -> np.ndarray:
    """1 - median(patched eraser sum) / median(clean eraser sum) on every resample (NaN where the clean one is 0)."""
    sums = torch.stack([clean, patched], dim=-1).float().cpu().numpy()
    c, p = boot.series_quantiles(boot.by_prompt(sums), [0.5])[0].T
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(c != 0, 1.0 - p / c, np.nan)


def _erasure(curve: dict, window: list[str]) -> float | None:
    """1 - the minimum of a persistence curve over the writer's window of checkpoints."""
    names = list(curve)
    vals = [curve[k] for k in names[names.index(window[0]) : names.index(window[1]) + 1] if curve[k] is not None]
    return rounded(1.0 - min(vals)) if vals else None


def _prs(vectors: Float[torch.Tensor, "t e d"], w: Float[torch.Tensor, "t d"]) -> Float[torch.Tensor, "t e"]:
    return torch.einsum("ted,td->te", vectors, w) / (w * w).sum(-1, keepdim=True)


def _share(clean: float | None, patched: float | None) -> float | None:
    if clean is None or patched is None or clean == 0:
        return None
    return rounded(1.0 - patched / clean)
