"""One streaming pass over the prompt set: the clean run, the V-composition-patched run, compact per-token tables.

Per batch of prompts the clean run caches only the hooks it needs (residual checkpoints, `hook_z`, `hook_mlp_out`,
LN scales), the patched run restarts at the first patched layer from the clean residual, and everything is
reduced at once to one projection ratio per (prompt, position, run, item). Nothing of size tokens x d_model
outlives its batch except the vectors kept for the first `n_dla_prompts` prompts (paper Fig 4).
Tables are written into memory-mapped .npy files, so memory stays flat whatever the number of prompts; their
space is allocated before the first batch, so a full disk is an OSError (ENOSPC) at once, never a SIGBUS on a
page of a sparse file. A NaN/inf projection ratio (a writer output of zero norm, or an overflow) stops the pass
with the prompts it came from: the tables hold only finite values.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float, Int
from numpy.lib.format import open_memmap
from safetensors.torch import save
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from erasure.errors import DataError
from erasure.mechanism.hooks import (
    FINAL_NORMALIZED,
    FINAL_SCALE,
    component_output,
    head_hooks,
    head_prs,
    hook_layer,
    ln1_scale_hook,
    mlp_out_hook,
    resid_hook,
    resid_pre_hook,
    run_capture,
)
from erasure.mechanism.names import Component, all_components, checkpoint_names
from erasure.mechanism.projection import projection_ratio
from erasure.mechanism.vcomp import norm_centre, vcomp_patch_hooks

RUNS = ("clean", "patched")
TOP_K_CHUNK = 256  # positions unembedded at once when finding the top-2 tokens (bounds the logits' memory)


def top2_tokens(model: HookedTransformer, resid_final_normed: Float[torch.Tensor, "b p d"]):
    """The clean model's top-2 token ids and logits (b_U included) at each position, unembedded in chunks."""
    ids, values = [], []
    for chunk in resid_final_normed.split(TOP_K_CHUNK, dim=1):
        top = model.unembed(chunk).topk(2, dim=-1)
        ids.append(top.indices)
        values.append(top.values)
    return torch.cat(ids, dim=1), torch.cat(values, dim=1)


def allocated_table(path: Path, shape: tuple[int, ...]) -> np.memmap:
    """A float32 .npy memmap whose every block is allocated now (posix_fallocate), not on first write.

    posix_fallocate is POSIX but not on macOS: there the file stays sparse, as numpy makes it.
    """
    table = open_memmap(path, "w+", np.float32, shape)
    if hasattr(os, "posix_fallocate"):
        with open(path, "r+b") as f:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
    return table


def check_finite_batch(out: dict[str, torch.Tensor], start: int, stop: int, writer: Component) -> None:
    for key in ("resid_pr", "component_pr"):
        bad = int((~torch.isfinite(out[key])).sum())
        if bad:
            raise DataError(f"activations: {bad} NaN/inf values of {key} in prompts {start}..{stop - 1}: the "
                            f"projection ratio onto {writer} is undefined where its output is zero (or the model "
                            "overflowed); the tables must be finite")


class ActivationPass:
    """Computes the per-token tables of one batch; `run` streams every batch into the output directory."""

    def __init__(self, model: HookedTransformer, writer: Component, erasers: list[Component]):
        cfg = model.cfg
        self.model, self.writer, self.erasers = model, writer, erasers
        self.components = all_components(cfg.n_layers, cfg.n_heads)
        self.checkpoints = checkpoint_names(cfg.n_layers)
        self.patch_layers = sorted({e.layer for e in erasers})
        self.first = self.patch_layers[0]
        layers = range(cfg.n_layers)
        self.names = (
            {resid_hook(c) for c in self.checkpoints}
            | set().union(*(head_hooks(model, l) for l in layers))
            | {mlp_out_hook(l) for l in layers}
            | {ln1_scale_hook(l) for l in self.patch_layers}
            | {resid_pre_hook(self.first), FINAL_SCALE, FINAL_NORMALIZED}
        )

    def component_prs(self, store: dict, o: torch.Tensor, layers) -> Float[torch.Tensor, "b p c"]:
        """PR of every component of `layers` onto o, in all_components order.

        Heads: erasure.mechanism.hooks.head_prs (no head's d_model-sized output is materialised).
        """
        out = []
        for layer in layers:
            out.append(head_prs(self.model, layer, store, o))
            out.append(projection_ratio(store[mlp_out_hook(layer)], o).unsqueeze(-1))
        return torch.cat(out, dim=-1)

    def eraser_sum(self, store: dict) -> Float[torch.Tensor, "b p d"]:
        return sum(component_output(self.model, store, e) for e in self.erasers)

    def batch(self, tokens: Int[torch.Tensor, "b p"], keep_vectors: bool) -> dict[str, torch.Tensor]:
        model, first = self.model, self.first
        clean = run_capture(model, tokens, self.names)
        o = component_output(model, clean, self.writer)
        scales = {l: clean[ln1_scale_hook(l)] for l in self.patch_layers}
        patched = run_capture(
            model,
            clean[resid_pre_hook(first)],
            {n for n in self.names if hook_layer(n) is None or hook_layer(n) >= first},
            vcomp_patch_hooks(model, o, scales, self.patch_layers),
            start_at_layer=first,
        )
        patched_view = {**clean, **patched}  # layers before the patch are identical in both runs
        resid = torch.stack(
            [
                torch.stack([projection_ratio(run[resid_hook(c)], o) for c in self.checkpoints], dim=-1)
                for run in (clean, patched_view)
            ],
            dim=2,
        )
        n_layers = model.cfg.n_layers
        comp_clean = self.component_prs(clean, o, range(n_layers))
        comp_patched = torch.cat(
            [comp_clean[..., : first * (model.cfg.n_heads + 1)],
             self.component_prs(patched, o, range(first, n_layers))],
            dim=-1,
        )
        sigma_f = clean[FINAL_SCALE].squeeze(-1)
        centred = norm_centre(model, o)
        out = {
            "resid_pr": resid,
            "component_pr": torch.stack([comp_clean, comp_patched], dim=2),
            "writer_over_scale_sum": (centred / sigma_f.unsqueeze(-1)).sum((0, 1)).double(),
        }
        if keep_vectors:
            erasers_clean = self.eraser_sum(clean)
            top2, logits_top2 = top2_tokens(model, clean[FINAL_NORMALIZED])
            out |= {
                "tokens": tokens,
                "writer_out": o,
                "erasers_out": erasers_clean,
                "vcomp_out": erasers_clean - self.eraser_sum(patched),
                "scale_final": sigma_f,
                "scale_patch_layer": scales[first].squeeze(-1),
                "top2": top2,
                "logits_top2": logits_top2,
            }
        return out

    def run(
        self,
        tokens: Int[torch.Tensor, "n p"],
        out_dir: Path,
        batch_size: int,
        n_dla_prompts: int,
        progress: Callable = tqdm,
    ) -> dict:
        n, p = tokens.shape
        n_dla = min(n_dla_prompts, n)
        out_dir.mkdir(parents=True, exist_ok=True)
        resid = allocated_table(out_dir / "resid_pr.npy", (n, p, 2, len(self.checkpoints)))
        comps = allocated_table(out_dir / "component_pr.npy", (n, p, 2, len(self.components)))
        kept: dict[str, list[torch.Tensor]] = {}
        over_scale = torch.zeros(self.model.cfg.d_model, dtype=torch.float64)
        for start in progress(range(0, n, batch_size), desc="activations", unit="batch"):
            stop = min(start + batch_size, n)
            out = self.batch(tokens[start:stop], keep_vectors=start < n_dla)
            check_finite_batch(out, start, stop, self.writer)
            resid[start:stop] = out["resid_pr"].numpy()
            comps[start:stop] = out["component_pr"].numpy()
            over_scale += out["writer_over_scale_sum"]
            for key in ("tokens", "writer_out", "erasers_out", "vcomp_out", "scale_final", "scale_patch_layer",
                        "top2", "logits_top2"):
                if key in out:
                    kept.setdefault(key, []).append(out[key][: max(0, n_dla - start)])
        resid.flush()
        comps.flush()
        del resid, comps
        dla = {k: torch.cat(v).contiguous() for k, v in kept.items()}
        dla["writer_over_scale_mean"] = (over_scale / (n * p)).float()
        (out_dir / "dla_cache.safetensors").write_bytes(save(dla))  # a full disk: OSError, not safetensors' own
        meta = {
            "writer": self.writer.name,
            "erasers": [e.name for e in self.erasers],
            "patch_layers": self.patch_layers,
            "components": [c.name for c in self.components],
            "checkpoints": self.checkpoints,
            "runs": list(RUNS),
            "n_prompts": n,
            "seq_len": p,
            "n_dla_prompts": n_dla,
            "d_model": self.model.cfg.d_model,
        }
        return meta


def compute_activation_tables(
    model: HookedTransformer,
    tokens: Int[torch.Tensor, "n p"],
    writer: Component,
    erasers: list[Component],
    out_dir: Path,
    batch_size: int,
    n_dla_prompts: int,
    extra_meta: dict | None = None,
) -> dict:
    """Write resid_pr.npy, component_pr.npy, dla_cache.safetensors and meta.json into out_dir."""
    meta = ActivationPass(model, writer, erasers).run(tokens, Path(out_dir), batch_size, n_dla_prompts)
    meta |= extra_meta or {}
    (Path(out_dir) / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta
