"""The DLA audit (docs/methods.md §9): for every head and MLP, its direct logit attribution against what removing
it really does, and who makes up the difference.

Per component c and token (prompt b, position p), along a logit direction u (the next token's unembedding, or the
clean run's top-2 difference), with c's output ablated at every position of the prompt at once:

    ΔDE = DLA(o_c) - DLA(o_c')              both over the CLEAN final-norm scale σ_f (frozen)
    TE  = logit_u(clean) - logit_u(ablated)   the ablation run through the rest of the model
    R   = ΔDE - TE = heads + mlps + ln         heads/mlps: Σ over c's downstream components of DLA(o_d') - DLA(o_d)
                                               (clean σ_f); ln: the remainder, the final norm's scale change

Streaming: one clean pass per batch of prompts captures every layer's residual input, z and MLP output (and the
donors' for `resample`); then, layer by layer, the layer's components' ablated copies run as one batch from that
layer on (`start_at_layer`), and hooks reduce every downstream output to its DLA scalar at once, so no
component's d_model-sized output is kept beyond the hook that sees it. What is kept: a few scalars per
(component, prompt, position).
"""
from __future__ import annotations

import ctypes
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from jaxtyping import Int
from transformer_lens import HookedTransformer

from erasure.analysis.audit_pool import AuditConfig, TokenValues
from erasure.mechanism.dla import centres
from erasure.mechanism.hooks import (
    FINAL_NORMALIZED,
    FINAL_SCALE,
    hook_layer,
    ln1_post_scale_hook,
    mlp_out_hook,
    post_norm,
    resid_pre_hook,
    run_capture,
    z_hook,
)
from erasure.mechanism.names import Component, all_components

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of returning it to the kernel; call once per process
    before the audit (and before its benchmark's floor, so both run alike). Why: glibc serves every block above
    32 MB with a fresh mmap and unmaps it on free, and an ablated pass's attention scores (copies x batch x heads x
    pos x pos floats: 94 MB for SmolLM2's 10 copies of 4 x 256 tokens) exceed that, so each pass faulted its pages
    in anew, zeroed by the kernel (SmolLM2, 2 prompts: 7.4 M page faults, 0.54 M with this; benchmarks/README.md).
    Process-wide, numerics untouched; peak RSS grows by what the heap keeps (that run: 2.2 -> 2.6 GB). False where
    the C library is not glibc (nothing changed)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


@dataclass
class AuditResult:
    tokens: dict[str, TokenValues]  # component name -> its token values
    valid: np.ndarray  # (n, p) bool: tokens with a direction (next_token: every position but the last)
    logit_rms: float  # RMS over valid tokens of the clean logit along u (scale of the null rule)
    seconds: dict[str, float] = field(default_factory=dict)


def donors(n: int, seed: int) -> np.ndarray:
    """For `resample`: prompt i takes its ablated component's output from prompt donors[i] != i, a seeded cyclic
    shift of a random order (a derangement; needs n >= 2)."""
    order = np.random.default_rng(seed).permutation(n)
    out = np.empty(n, dtype=np.int64)
    out[order] = np.roll(order, -1)
    return out


class _Directions:
    """u per token and what the hooks need of it: u centred as the final norm centres (LN) or not (RMS), and
    every layer's W_O-side projection W_O[h] (w_post * u), so a head's DLA is a d_head-sized dot product."""

    def __init__(self, model: HookedTransformer, u: torch.Tensor, scale: torch.Tensor):
        self.u = u - u.mean(-1, keepdim=True) if centres(model) else u  # (b, p, d)
        self.scale = scale  # clean σ_f (b, p)
        self.model = model
        self._heads: dict[int, torch.Tensor] = {}

    def heads(self, layer: int) -> torch.Tensor:
        """(b, p, h, d_head): W_O[h] (w_post ⊙ u) / σ_f."""
        if layer not in self._heads:
            block = self.model.blocks[layer]
            w = block.ln1_post.w if post_norm(self.model) else 1.0
            self._heads[layer] = torch.einsum("hkd,bpd->bphk", block.attn.W_O, self.u * w) / self.scale[..., None,
                                                                                                          None]
        return self._heads[layer]

    def along(self, x: torch.Tensor) -> torch.Tensor:
        """DLA (clean σ_f) of (copies*b, p, d) vectors: (copies, b, p)."""
        b = self.u.shape[0]
        x = x.reshape(-1, b, *x.shape[1:])
        return (x * self.u).sum(-1) / self.scale


def _head_dla(dirs: _Directions, layer: int, z: torch.Tensor, post_scale: torch.Tensor | None) -> torch.Tensor:
    """(copies, b, p, h) DLA of every head of a layer from its z (copies*b, p, h, k)."""
    b = dirs.u.shape[0]
    z = z.reshape(-1, b, *z.shape[1:])
    return _post_scaled((z * dirs.heads(layer)).sum(-1), post_scale)


def _post_scaled(dla: torch.Tensor, post_scale: torch.Tensor | None) -> torch.Tensor:
    """Head DLA (copies, b, p, h) over the layer's post-attention norm scale (copies*b, p, 1), where there is one."""
    if post_scale is None:
        return dla
    return dla / post_scale.reshape(*dla.shape[:3], 1)


class ComponentAudit:
    """Runs the audit batch by batch; `result()` after every batch."""

    def __init__(self, model: HookedTransformer, tokens: Int[torch.Tensor, "n p"], cfg: AuditConfig,
                 erasers: dict[str, list[Component]]):
        self.model, self.tokens, self.cfg, self.erasers = model, tokens, cfg, erasers
        n, p = tokens.shape
        L, H = model.cfg.n_layers, model.cfg.n_heads
        self.comps = all_components(L, H)
        self.arrays = {c.name: {k: np.zeros((n, p)) for k in ("delta_de", "total", "heads", "mlps", "de_clean")}
                       for c in self.comps}
        for name in erasers:
            self.arrays[name]["erasers"] = np.zeros((n, p))
        self.valid = np.ones((n, p), dtype=bool)
        if cfg.direction == "next_token":
            self.valid[:, -1] = False
        self.logit_sq = 0.0
        self.means = self._mean_outputs() if cfg.ablation == "mean" else None
        self.donors = donors(n, cfg.seed) if cfg.ablation == "resample" else None
        self.seconds = {"clean": 0.0, "ablated": 0.0}

    # ---- the clean side ----
    def _output_names(self) -> set[str]:
        L = self.model.cfg.n_layers
        names = {z_hook(i) for i in range(L)} | {mlp_out_hook(i) for i in range(L)}
        if post_norm(self.model):
            names |= {ln1_post_scale_hook(i) for i in range(L)}
        return names

    def _mean_outputs(self) -> dict[str, torch.Tensor]:
        """`mean`: every layer's z and MLP output averaged over the prompts, position by position."""
        sums: dict[str, torch.Tensor] = {}
        names = {z_hook(i) for i in range(self.model.cfg.n_layers)} | {
            mlp_out_hook(i) for i in range(self.model.cfg.n_layers)}
        for start in range(0, self.tokens.shape[0], self.cfg.batch_size):
            store = run_capture(self.model, self.tokens[start : start + self.cfg.batch_size].to(self.model.cfg.device),
                                names)
            for k, v in store.items():
                sums[k] = sums.get(k, 0) + v.double().sum(0)
        return {k: (v / self.tokens.shape[0]).to(self.model.cfg.dtype) for k, v in sums.items()}

    def _direction(self, batch: torch.Tensor, normalized: torch.Tensor) -> torch.Tensor:
        W_U = self.model.W_U
        if self.cfg.direction == "next_token":
            nxt = torch.cat([batch[:, 1:], batch[:, -1:]], dim=1)  # the last position has none (masked)
            return W_U.T[nxt]
        top2 = torch.stack([(row @ W_U + self.model.b_U).topk(2, dim=-1).indices for row in normalized])
        return W_U.T[top2[..., 0]] - W_U.T[top2[..., 1]]  # one prompt's logits at a time (Gemma: 262k tokens)

    # ---- one batch ----
    def add_batch(self, start: int) -> None:
        model, cfg = self.model, self.cfg
        L = model.cfg.n_layers
        batch = self.tokens[start : start + cfg.batch_size].to(model.cfg.device)
        b = batch.shape[0]
        rows = slice(start, start + b)
        final_resid = f"blocks.{L - 1}.hook_resid_post"
        t0 = time.perf_counter()
        with torch.inference_mode():
            names = {resid_pre_hook(i) for i in range(L)} | self._output_names() | {
                FINAL_SCALE, FINAL_NORMALIZED, final_resid}
            clean = run_capture(model, batch, names)
            donor = None
            if self.donors is not None:
                donor = run_capture(model, self.tokens[self.donors[start : start + b]].to(model.cfg.device),
                                    self._output_names())
            scale = clean[FINAL_SCALE].squeeze(-1)
            dirs = _Directions(model, self._direction(batch, clean[FINAL_NORMALIZED]), scale)
            logit_clean = dirs.along(clean[final_resid])[0]  # (b, p), without b_U (it cancels in TE)
            valid = torch.as_tensor(self.valid[rows])
            self.logit_sq += float((logit_clean[valid].double() ** 2).sum())
            heads_clean = [_head_dla(dirs, i, clean[z_hook(i)],
                                     clean.get(ln1_post_scale_hook(i)))[0] for i in range(L)]  # (b, p, h)
            mlps_clean = [dirs.along(clean[mlp_out_hook(i)])[0] for i in range(L)]
            self.seconds["clean"] += time.perf_counter() - t0
            for layer in range(L):
                t0 = time.perf_counter()
                self._layer(layer, clean, donor, dirs, logit_clean, heads_clean, mlps_clean, rows)
                self.seconds["ablated"] += time.perf_counter() - t0

    def _replacement(self, name: str, clean: dict, donor: dict | None, b: int) -> torch.Tensor | None:
        """What an ablated output becomes at hook `name` (None = zero), for b prompts: (b, p, ...)."""
        if self.cfg.ablation == "zero":
            return None
        if self.cfg.ablation == "mean":
            return self.means[name].expand(b, *self.means[name].shape)
        return donor[name]

    def _layer(self, layer, clean, donor, dirs, logit_clean, heads_clean, mlps_clean, rows) -> None:
        """The ablated copies of one layer's heads and MLP, as one batch from that layer on."""
        model = self.model
        L, H = model.cfg.n_layers, model.cfg.n_heads
        b = logit_clean.shape[0]
        copies = H + 1  # copy k < H: head k ablated; copy H: the MLP
        z_name, mlp_name = z_hook(layer), mlp_out_hook(layer)
        z_rep = self._replacement(z_name, clean, donor, b)
        mlp_rep = self._replacement(mlp_name, clean, donor, b)

        def ablate_heads(z, hook):
            z = z.clone()
            for h in range(H):
                z[h * b : (h + 1) * b, :, h] = 0.0 if z_rep is None else z_rep[:, :, h]
            return z

        def ablate_mlp(out, hook):
            out = out.clone()
            out[H * b :] = 0.0 if mlp_rep is None else mlp_rep
            return out

        got: dict[str, torch.Tensor] = {}
        post = post_norm(model)

        def head_dla(z, hook):  # every head of a layer >= this one, reduced to DLA scalars at once
            got[hook.name] = _head_dla(dirs, hook_layer(hook.name), z, None)

        def keep(x, hook):
            got[hook.name] = x

        def mlp_dla(out, hook):
            got[hook.name] = dirs.along(out)

        final_resid = f"blocks.{L - 1}.hook_resid_post"
        hooks = [(z_name, ablate_heads), (mlp_name, ablate_mlp)]
        hooks += [(z_hook(i), head_dla) for i in range(layer, L)]
        hooks += [(mlp_out_hook(i), mlp_dla) for i in range(layer, L)]
        if post:
            hooks += [(ln1_post_scale_hook(i), keep) for i in range(layer, L)]
        hooks += [(final_resid, lambda x, hook: got.__setitem__(hook.name, dirs.along(x))), (FINAL_SCALE, keep)]
        resid = clean[resid_pre_hook(layer)]
        resid = resid.repeat(copies, *([1] * (resid.dim() - 1)))
        model.run_with_hooks(resid, start_at_layer=layer, return_type=None, fwd_hooks=hooks)
        # per downstream layer: (copies, b, p, h) head DLA and (copies, b, p) MLP DLA, ablated minus clean
        d_heads = {i: _post_scaled(got[z_hook(i)], got.get(ln1_post_scale_hook(i))) - heads_clean[i]
                   for i in range(layer, L)}
        d_mlps = {i: got[mlp_out_hook(i)] - mlps_clean[i] for i in range(layer, L)}
        scale_abl = got[FINAL_SCALE].squeeze(-1).reshape(copies, b, -1)
        logit_abl = got[final_resid] * dirs.scale / scale_abl  # along() divided by the clean σ_f
        total = logit_clean - logit_abl  # (copies, b, p)
        for k in range(copies):
            comp = Component(layer, k) if k < H else Component(layer)
            a = self.arrays[comp.name]
            if comp.is_head:
                own = -d_heads[layer][k, ..., k]
                heads = sum(d_heads[i][k].sum(-1) for i in range(layer + 1, L))
                if post:  # the layer's shared post-norm rescales its other heads
                    heads = heads + d_heads[layer][k].sum(-1) + own
                mlps = sum(d_mlps[i][k] for i in range(layer, L))
                de = heads_clean[layer][..., k]
            else:
                own = -d_mlps[layer][k]
                heads = sum(d_heads[i][k].sum(-1) for i in range(layer + 1, L))
                mlps = sum(d_mlps[i][k] for i in range(layer + 1, L))
                de = mlps_clean[layer]
            for key, value in (("delta_de", own), ("total", total[k]), ("heads", heads), ("mlps", mlps),
                               ("de_clean", de)):
                a[key][rows] = _np(value, a[key][rows].shape)
            if comp.name in self.erasers:
                part = sum(d_heads[e.layer][k][..., e.head] if e.is_head else d_mlps[e.layer][k]
                           for e in self.erasers[comp.name] if downstream(comp, e))
                a["erasers"][rows] = _np(part, a["erasers"][rows].shape)

    def result(self) -> AuditResult:
        tokens = {name: TokenValues(**a) for name, a in self.arrays.items()}
        rms = math.sqrt(self.logit_sq / max(1, int(self.valid.sum())))
        return AuditResult(tokens, self.valid, rms, self.seconds)


def downstream(comp: Component, other: Component) -> bool:
    """Whether `other` reads what `comp` writes: a later layer, or the MLP of a head's own layer."""
    return other.layer > comp.layer or (comp.is_head and not other.is_head and other.layer == comp.layer)


def _np(value, shape) -> np.ndarray:
    """A torch value (or the int 0 of an empty sum) as a float64 array of `shape`."""
    if isinstance(value, torch.Tensor):
        return value.detach().double().cpu().numpy()
    return np.full(shape, float(value))


def run_audit(model: HookedTransformer, tokens: torch.Tensor, cfg: AuditConfig,
              erasers: dict[str, list[Component]]) -> AuditResult:
    audit = ComponentAudit(model, tokens, cfg, erasers)
    for start in range(0, tokens.shape[0], cfg.batch_size):
        audit.add_batch(start)
    return audit.result()
