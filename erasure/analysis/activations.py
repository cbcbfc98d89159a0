"""The activation tables: per token, the clean and V-composition-patched projection ratios onto the writer.

Per batch the clean run (shared with discovery: erasure.analysis.clean_pass) keeps only the hooks the tables need
(residual checkpoints, the head hooks, `hook_mlp_out`, LN scales); the patched run restarts at the first patched layer
from the clean residual (layers before it are the same in both runs), and everything is reduced at once to one
projection ratio per (prompt, position, run, item). Nothing of size tokens x d_model outlives its batch: the
first `n_dla_prompts` prompts' vectors are reduced to paper Fig 4's DLA points in the batch
(erasure.analysis.fig4_points). Tables are written into memory-mapped .npy files, so memory stays flat whatever the
number of prompts; their space is allocated before the first batch, so a full disk is an OSError (ENOSPC) at once,
never a SIGBUS on a page of a sparse file. A NaN/inf projection ratio (a writer output of zero norm, or an
overflow) stops the pass with the prompts it came from: the tables hold only finite values. With no erasers
(none named, or none found) nothing is patched: the patched run is the clean run, and the figure stages say what
does not apply.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float, Int
from numpy.lib.format import open_memmap
from transformer_lens import HookedTransformer

from erasure.analysis.fig4_points import Fig4Points
from erasure.analysis.roles import Roles
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
from erasure.params.sections import Fig4
from erasure.paths import FIG4_POINTS
from erasure.schemas import RUNS

TOP_K_CHUNK = 256  # positions unembedded at once when finding the top-2 tokens (bounds the logits' memory)


def top2_tokens(model: HookedTransformer, resid_final_normed: Float[torch.Tensor, "b p d"]):
    """The clean model's top-2 token ids and logits (b_U included) at each position, unembedded in chunks.
    (Under half precision TransformerLens hooks ln_final's output in float32: cast back to the weights' dtype.)"""
    ids, values = [], []
    for chunk in resid_final_normed.split(TOP_K_CHUNK, dim=1):
        top = model.unembed(chunk.to(model.cfg.dtype)).topk(2, dim=-1)
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


def check_finite_batch(tables: dict[str, torch.Tensor], start: int, stop: int, writer: Component) -> None:
    for key, values in tables.items():
        bad = int((~torch.isfinite(values)).sum())
        if bad:
            raise DataError(f"activations: {bad} NaN/inf values of {key} in prompts {start}..{stop - 1}: the "
                            f"projection ratio onto {writer} is undefined where its output is zero (or the model "
                            "overflowed); the tables must be finite")


class TablePass:
    """The activation tables as a consumer of the clean pass (erasure.analysis.clean_pass): per batch, the
    patched run from the first patched layer and the per-token tables, written into `out_dir`; `finish()`."""

    def __init__(
        self, model: HookedTransformer, roles: Roles, n: int, p: int, out_dir: Path, n_dla_prompts: int,
        fig4: Fig4,
    ):
        cfg = model.cfg
        self.model, self.roles, self.writer, self.erasers = model, roles, roles.writer, roles.erasers
        self.components = all_components(cfg.n_layers, cfg.n_heads)
        self.checkpoints = checkpoint_names(cfg.n_layers)
        self.patch_layers = sorted({e.layer for e in self.erasers})
        self.first = self.patch_layers[0] if self.patch_layers else None  # None: no erasers, nothing patched
        layers = range(cfg.n_layers)
        self.names = (
            {resid_hook(c) for c in self.checkpoints}
            | set().union(*(head_hooks(model, l) for l in layers))
            | {mlp_out_hook(l) for l in layers}
            | {ln1_scale_hook(l) for l in self.patch_layers}
            | ({resid_pre_hook(self.first)} if self.patch_layers else set())
            | {FINAL_SCALE, FINAL_NORMALIZED}
        )
        self.n, self.p, self.out_dir = n, p, Path(out_dir)
        self.n_dla = min(n_dla_prompts, n)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.resid = allocated_table(self.out_dir / "resid_pr.npy", (n, p, 2, len(self.checkpoints)))
        self.comps = allocated_table(self.out_dir / "component_pr.npy", (n, p, 2, len(self.components)))
        self.over_scale = torch.zeros(cfg.d_model, dtype=torch.float64, device=cfg.device)
        self.points = Fig4Points(model, self.erasers, self.n_dla, fig4)

    def names_for(self, start: int) -> set[str]:
        return self.names

    def component_prs(self, store: dict, o: torch.Tensor, layers) -> Float[torch.Tensor, "b p c"]:
        """PR of every component of `layers` onto o, in all_components order.

        Heads: erasure.mechanism.hooks.head_prs (no head's d_model-sized output is materialised).
        """
        out = []
        for layer in layers:
            out.append(head_prs(self.model, layer, store, o))
            out.append(projection_ratio(store[mlp_out_hook(layer)], o).unsqueeze(-1))
        return torch.cat(out, dim=-1)

    def eraser_sum(self, store: dict, like: torch.Tensor) -> Float[torch.Tensor, "b p d"]:
        """The erasers' summed output (zeros like `like` when there are none)."""
        return sum((component_output(self.model, store, e) for e in self.erasers), torch.zeros_like(like))

    def add(self, start: int, tokens: Int[torch.Tensor, "b p"], clean: dict[str, torch.Tensor]) -> None:
        """One batch: the patched run from the clean residual entering the first patched layer, then every PR."""
        model, first = self.model, self.first
        o = component_output(model, clean, self.writer)
        scales = {l: clean[ln1_scale_hook(l)] for l in self.patch_layers}
        if first is None:  # no erasers: nothing to patch, the patched run is the clean run
            first, patched = model.cfg.n_layers, {}
        else:
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
        comp_patched = comp_clean if first == n_layers else torch.cat(
            [comp_clean[..., : first * (model.cfg.n_heads + 1)],
             self.component_prs(patched, o, range(first, n_layers))],
            dim=-1,
        )
        stop = start + tokens.shape[0]
        tables = {"resid_pr": resid, "component_pr": torch.stack([comp_clean, comp_patched], dim=2)}
        check_finite_batch(tables, start, stop, self.writer)
        self.resid[start:stop] = _numpy(tables["resid_pr"])
        self.comps[start:stop] = _numpy(tables["component_pr"])
        sigma_f = clean[FINAL_SCALE].squeeze(-1)
        self.over_scale += (norm_centre(model, o) / sigma_f.unsqueeze(-1)).sum((0, 1)).double()
        if start < self.n_dla:  # whole-batch products, as a batch of their own would compute them
            erasers_clean = self.eraser_sum(clean, o)
            top2, _ = top2_tokens(model, clean[FINAL_NORMALIZED])
            scale_patch = scales[first].squeeze(-1) if scales else None
            self.points.add(start, tokens, o, erasers_clean - self.eraser_sum(patched_view, o), erasers_clean,
                            sigma_f, scale_patch, top2)

    def finish(self, tokenizer) -> dict:
        """Flush the tables, write the Fig 4 points; the meta.json record (without model and prompt keys).
        `tokenizer` decodes the aligned tokens."""
        self.resid.flush()
        self.comps.flush()
        del self.resid, self.comps
        mean = (self.over_scale / (self.n * self.p)).to(self.model.cfg.dtype)
        with open(self.out_dir / FIG4_POINTS, "wb") as f:
            np.savez(f, **self.points.arrays())
        return {
            "writer": self.writer.name,
            "erasers": [e.name for e in self.erasers],
            "roles_source": self.roles.source,
            "roles_note": self.roles.note,
            "patch_layers": self.patch_layers,
            "components": [c.name for c in self.components],
            "checkpoints": self.checkpoints,
            "runs": list(RUNS),
            "n_prompts": self.n,
            "seq_len": self.p,
            "n_dla_prompts": self.n_dla,
            "d_model": self.model.cfg.d_model,
            "fig4": self.points.meta(mean, tokenizer),
        }


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().to("cpu", torch.float32).numpy()


def write_meta(out_dir: Path, meta: dict) -> None:
    (Path(out_dir) / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
