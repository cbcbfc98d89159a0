"""Which component reads which (the PR pairs and persistence series), and every component's output and the
residual norm at every checkpoint, from the hooks of a clean pass."""
from __future__ import annotations

import torch
from jaxtyping import Float, Int
from transformer_lens import HookedTransformer

from erasure.mechanism.hooks import head_hooks, head_outputs, mlp_out_hook, resid_hook, run_capture, z_hook
from erasure.mechanism.names import all_components, checkpoint_names


class Layout:
    """Components, checkpoints, and which component reads which (the PR pairs and persistence series)."""

    def __init__(self, n_layers: int, n_heads: int):
        self.n_layers, self.n_heads = n_layers, n_heads
        self.components = all_components(n_layers, n_heads)
        self.names = [c.name for c in self.components]
        self.checkpoints = checkpoint_names(n_layers)
        n = len(self.components)
        # index of the first checkpoint that contains the component's output
        self.own = torch.tensor([1 + 2 * c.layer + (0 if c.is_head else 1) for c in self.components])
        self.after = self.own[None, :] > self.own[:, None]  # after[w, c]: c reads w
        self.writers = [i for i, c in enumerate(self.components) if c.layer < n_layers - 1]
        pw, pc = [], []
        for w in self.writers:
            cs = torch.nonzero(self.after[w]).flatten().tolist()
            pw += [w] * len(cs)
            pc += cs
        self.pair_w, self.pair_c = torch.tensor(pw), torch.tensor(pc)
        self.pair_flat = self.pair_w * n + self.pair_c
        self.pair_index = {(w, c): i for i, (w, c) in enumerate(zip(pw, pc))}
        sw, sk = [], []
        for w in self.writers:
            ks = list(range(int(self.own[w]) + 1, len(self.checkpoints)))
            sw += [w] * len(ks)
            sk += ks
        self.ser_w, self.ser_k = torch.tensor(sw), torch.tensor(sk)
        self.ser_flat = self.ser_w * len(self.checkpoints) + self.ser_k
        self.ser_index = {(w, k): i for i, (w, k) in enumerate(zip(sw, sk))}
        self.segment = torch.nn.functional.one_hot(self.own, len(self.checkpoints)).float()  # (n, n_ckpt)
        self.writer_rows = torch.tensor(self.writers)

    @property
    def n(self) -> int:
        return len(self.components)

    def index(self, name: str) -> int:
        return self.names.index(name)


def clean_hooks(model: HookedTransformer, layout: Layout) -> set[str]:
    """The hooks every component's output and every checkpoint's norm are computed from."""
    return output_hooks(model, layout) | {resid_hook(c) for c in layout.checkpoints}


def output_hooks(model: HookedTransformer, layout: Layout) -> set[str]:
    """The hooks every component's output is computed from (`component_outputs`)."""
    return set().union(*(head_hooks(model, l) for l in range(layout.n_layers))) | {
        mlp_out_hook(l) for l in range(layout.n_layers)}


def component_outputs(
    model: HookedTransformer, store: dict[str, torch.Tensor], layout: Layout
) -> Float[torch.Tensor, "b p n d"]:
    """Every component's output, from a clean run's `output_hooks` (a head's: hooks.head_outputs)."""
    b, p = store[z_hook(0)].shape[:2]
    H = layout.n_heads
    ref = store[mlp_out_hook(0)]
    outs = torch.empty(b, p, layout.n, model.cfg.d_model, dtype=ref.dtype, device=ref.device)
    for layer in range(layout.n_layers):
        base = layer * (H + 1)
        outs[:, :, base : base + H] = head_outputs(model, layer, store)
        outs[:, :, base + H] = store[mlp_out_hook(layer)]
    return outs


def outputs_from(
    model: HookedTransformer, store: dict[str, torch.Tensor], layout: Layout
) -> tuple[Float[torch.Tensor, "b p n d"], Float[torch.Tensor, "b p k"]]:
    """Every component's output and the residual norm at each checkpoint, from a clean run's `clean_hooks`."""
    outs = component_outputs(model, store, layout)
    b, p = outs.shape[:2]
    norms = torch.empty(b, p, len(layout.checkpoints), dtype=outs.dtype, device=outs.device)
    for k, name in enumerate(layout.checkpoints):
        norms[:, :, k] = store[resid_hook(name)].norm(dim=-1)
    return outs, norms


def capture_outputs(
    model: HookedTransformer, tokens: Int[torch.Tensor, "b p"], layout: Layout, extra: set[str] = frozenset()
) -> tuple[Float[torch.Tensor, "b p n d"], Float[torch.Tensor, "b p k"], dict[str, torch.Tensor]]:
    """One clean forward pass: every component's output, the residual norm at each checkpoint, `extra` hooks."""
    store = run_capture(model, tokens, clean_hooks(model, layout) | set(extra))
    outs, norms = outputs_from(model, store, layout)
    return outs, norms, {name: store[name] for name in extra}


def pair_ratios(outs: Float[torch.Tensor, "t n d"], layout: Layout) -> Float[torch.Tensor, "t n n"]:
    """R[t, w, c] = PR(c, w) for c reading w (0 elsewhere, NaN rows where |w| = 0); block upper-triangular Gram."""
    t, n, _ = outs.shape
    gram = torch.zeros(t, n, n, dtype=outs.dtype, device=outs.device)
    H = layout.n_heads
    for layer in range(layout.n_layers):
        a, b = layer * (H + 1), (layer + 1) * (H + 1)
        gram[:, a:b, a:] = torch.bmm(outs[:, a:b], outs[:, a:].transpose(1, 2))
    norm2 = gram.diagonal(dim1=1, dim2=2).clone()
    norm2[norm2 <= 0] = float("nan")
    ratios = gram.div_(norm2.unsqueeze(-1))
    return ratios.mul_(layout.after.to(ratios))


def persistence(ratios: Float[torch.Tensor, "t n n"], layout: Layout) -> Float[torch.Tensor, "t n k"]:
    """P[t, w, k] = 1 + sum of PR(c, w) over c reading w and written before checkpoint k."""
    return 1.0 + torch.cumsum(ratios @ layout.segment.to(ratios), dim=-1)
