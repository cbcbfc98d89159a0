"""Pass 2 of discovery, on the first `n_vcomp_prompts` prompts: the V-composition test of each top writer's
erasers (clean vs V-patched PRs, exact quantiles) and the centred persistence control.

The clean outputs of those prompts come from the activations stage's one clean pass (kept when they fit in
`compute.memory_gb`) or from running them again (`recompute_subset`), batch for batch the same.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from jaxtyping import Float, Int
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from erasure.analysis.discovery.layout import Layout, capture_outputs
from erasure.analysis.discovery.ranking import rounded
from erasure.analysis.discovery.scan import positions
from erasure.mechanism.hooks import component_output, ln1_scale_hook, output_hook, resid_pre_hook, run_capture
from erasure.mechanism.vcomp import vcomp_patch_hooks
from erasure.params.sections import Discovery


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
        outs, _, store = capture_outputs(model, tokens[start : start + batch_size], layout, subset_hooks(layers))
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
    top: list[dict],
    mean_out: torch.Tensor,
) -> None:
    """Clean vs V-patched eraser PRs and centred persistence for each top writer (results added in place).

    `subset`: per batch of the first n prompts, every component's clean output (b, p, n_comp, d) and the clean
    `subset_hooks` of the layers in `patch_layers_of(top)`.
    """
    patch_layers = patch_layers_of(top, layout)
    acc: dict[str, dict[str, list]] = {r["name"]: {"clean": [], "patched": [], "P": [], "Pc": []} for r in top}
    bar = tqdm(total=n * (1 + sum(bool(v) for v in patch_layers.values())), desc="discover: V-comp", unit="run")
    for outs, store in subset:
        pos = positions(outs.shape[1], dp.include_bos)
        bar.update(outs.shape[0])
        flat = outs[:, pos].reshape(-1, layout.n, outs.shape[-1])
        for r in top:
            w = r["index"]
            o = outs[:, :, w]
            e_idx = [e["index"] for e in r["erasers"]]
            ow = flat[:, w]
            later = layout.after[w]
            # persistence, exact on this subset; centred: PR(c - mean c, w - mean w) (means over non-BOS tokens)
            dw = ow - mean_out[w]
            centred = (torch.einsum("tnd,td->tn", flat, dw) - dw @ mean_out.T) / (dw * dw).sum(-1, keepdim=True)
            for key, pr in (("P", _prs(flat, ow)), ("Pc", centred)):
                acc[r["name"]][key].append(1.0 + torch.cumsum((pr * later.to(pr)) @ layout.segment.to(pr), -1))
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
                model, store[resid_pre_hook(first)], {output_hook(e) for e in erasers},
                vcomp_patch_hooks(model, o, scales, layers), start_at_layer=first, stop_at_layer=last + 1,
            )
            patched = torch.stack([component_output(model, after_patch, e) for e in erasers], dim=2)
            acc[r["name"]]["patched"].append(_prs(patched[:, pos].reshape(-1, len(e_idx), outs.shape[-1]), ow))
            bar.update(outs.shape[0])
    bar.close()
    ckpts = layout.checkpoints
    for r in top:
        a = acc[r["name"]]
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
