"""Which component reads which (the PR pairs and persistence series), and the clean pass that captures every
component's output and the residual norm at every checkpoint."""
from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Float, Int
from transformer_lens import HookedTransformer

from erasure.mechanism.hooks import head_hooks, head_outputs, mlp_out_hook, resid_hook
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


def capture_outputs(
    model: HookedTransformer, tokens: Int[torch.Tensor, "b p"], layout: Layout, extra: set[str] = frozenset()
) -> tuple[Float[torch.Tensor, "b p n d"], Float[torch.Tensor, "b p k"], dict[str, torch.Tensor]]:
    """One clean forward pass: every component's output, the residual norm at each checkpoint, `extra` hooks."""
    b, p = tokens.shape
    H = layout.n_heads
    outs = torch.empty(b, p, layout.n, model.cfg.d_model)
    norms = torch.empty(b, p, len(layout.checkpoints))
    store: dict[str, torch.Tensor] = {}
    hooks: list[tuple[str, Callable]] = []
    for layer in range(layout.n_layers):
        base = layer * (H + 1)
        head_store: dict[str, torch.Tensor] = {}

        def save_heads(x, hook, layer=layer, base=base, head_store=head_store):
            head_store[hook.name] = x  # the mlp hook below runs after every head hook of the layer

        def save_mlp(x, hook, layer=layer, base=base, head_store=head_store):
            outs[:, :, base : base + H] = head_outputs(model, layer, head_store)
            head_store.clear()
            outs[:, :, base + H] = x

        hooks += [(name, save_heads) for name in head_hooks(model, layer)] + [(mlp_out_hook(layer), save_mlp)]
    for k, name in enumerate(layout.checkpoints):

        def norm_hook(x, hook, k=k):
            norms[:, :, k] = x.norm(dim=-1)

        hooks.append((resid_hook(name), norm_hook))

    def save(x, hook):
        store[hook.name] = x

    hooks += [(name, save) for name in extra]
    model.run_with_hooks(tokens, fwd_hooks=hooks, return_type=None)
    return outs, norms, store


def pair_ratios(outs: Float[torch.Tensor, "t n d"], layout: Layout) -> Float[torch.Tensor, "t n n"]:
    """R[t, w, c] = PR(c, w) for c reading w (0 elsewhere, NaN rows where |w| = 0); block upper-triangular Gram."""
    t, n, _ = outs.shape
    gram = torch.zeros(t, n, n)
    H = layout.n_heads
    for layer in range(layout.n_layers):
        a, b = layer * (H + 1), (layer + 1) * (H + 1)
        gram[:, a:b, a:] = torch.bmm(outs[:, a:b], outs[:, a:].transpose(1, 2))
    norm2 = gram.diagonal(dim1=1, dim2=2).clone()
    norm2[norm2 <= 0] = float("nan")
    ratios = gram.div_(norm2.unsqueeze(-1))
    return ratios.mul_(layout.after.float())


def persistence(ratios: Float[torch.Tensor, "t n n"], layout: Layout) -> Float[torch.Tensor, "t n k"]:
    """P[t, w, k] = 1 + sum of PR(c, w) over c reading w and written before checkpoint k."""
    return 1.0 + torch.cumsum(ratios @ layout.segment, dim=-1)
