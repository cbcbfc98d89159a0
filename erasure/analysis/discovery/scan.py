"""Pass 1 of discovery: every prompt's component outputs, accumulated into the pair, persistence and relevance
histograms.

The activations stage's clean pass hands each batch's hooks to `Scanner.add` (erasure.analysis.passes); per batch
only the component outputs (tokens x components x d_model) live in memory, reduced in token chunks to the
writer x later-component PR matrix.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from transformer_lens import HookedTransformer

from erasure.analysis.discovery.layout import Layout, clean_hooks, outputs_from, pair_ratios, persistence
from erasure.mechanism.histogram import AsinhHistogram
from erasure.params.sections import Discovery

TOKEN_CHUNK = 256  # tokens reduced at once to the (writer x component) PR matrix (bounds the Gram matrix memory)


@dataclass
class Scan:
    pair: AsinhHistogram  # PR(c, w) for every pair
    persist: AsinhHistogram  # P_k(w) for every writer and later checkpoint
    rel_norm: AsinhHistogram  # |w| / |resid at w's checkpoint|
    mean_out: torch.Tensor  # (n, d) mean output of each component over non-BOS tokens
    n_tokens: int
    kept: torch.Tensor  # (tokens, len(keep)) per-token values of the kept persistence series (for the bootstrap)
    rel_values: torch.Tensor  # (tokens, writers) per-token |w| / |resid|
    prompt_of_token: torch.Tensor  # (tokens,) the prompt each pooled token comes from


def positions(p: int, include_bos: bool) -> slice:
    return slice(0, p) if include_bos else slice(1, p)


class Scanner:
    """Accumulates the scan batch by batch: `add` each batch's clean hooks (`names`), then `result()`. Besides the
    histograms it keeps the per-token values of the persistence series `keep` and of the relevance ratio
    (float32, on the CPU, for the prompt bootstrap)."""

    def __init__(self, model: HookedTransformer, layout: Layout, dp: Discovery, n: int, seq_len: int,
                 keep: torch.Tensor):
        hist = dict(bins=dp.hist_bins, scale=dp.hist_scale, max_abs=dp.hist_max, device=model.cfg.device)
        self.model, self.layout, self.n, self.p = model, layout, n, seq_len
        self.names = clean_hooks(model, layout)
        self.pair = AsinhHistogram(len(layout.pair_w), **hist)
        self.persist = AsinhHistogram(len(layout.ser_w), **hist)
        self.rel = AsinhHistogram(len(layout.writers), **hist)
        self.mean_sum = torch.zeros(layout.n, model.cfg.d_model, dtype=torch.float64, device=model.cfg.device)
        self.n_mean, self.n_tokens = 0, 0
        self.pos = positions(seq_len, dp.include_bos)
        self.n_pos = len(range(seq_len)[self.pos])
        self.keep = keep
        self.kept = torch.empty(n * self.n_pos, len(keep))
        self.rel_values = torch.empty(n * self.n_pos, len(layout.writers))
        self.own_w = layout.own[layout.writer_rows]

    def add(self, store: dict[str, torch.Tensor]) -> None:
        """Add one batch (its `names` hooks)."""
        layout, p = self.layout, self.p
        full, norms_full = outputs_from(self.model, store, layout)
        self.mean_sum += full[:, 1:].sum((0, 1)).double()
        self.n_mean += full.shape[0] * (p - 1)
        outs = full[:, self.pos].reshape(-1, layout.n, full.shape[-1])
        norms = norms_full[:, self.pos].reshape(-1, norms_full.shape[-1])
        first = self.n_tokens
        self.n_tokens += outs.shape[0]
        for a in range(0, outs.shape[0], TOKEN_CHUNK):
            chunk = outs[a : a + TOKEN_CHUNK]
            t = chunk.shape[0]
            ratios = pair_ratios(chunk, layout)
            self.pair.update(ratios.view(t, -1)[:, layout.pair_flat])
            series = persistence(ratios, layout).view(t, -1)[:, layout.ser_flat]
            self.persist.update(series)
            w_norm = chunk[:, layout.writer_rows].norm(dim=-1)
            rel_chunk = w_norm / norms[a : a + t][:, self.own_w]
            self.rel.update(rel_chunk)
            self.kept[first + a : first + a + t] = series[:, self.keep].float().cpu()
            self.rel_values[first + a : first + a + t] = rel_chunk.float().cpu()
            del ratios

    def result(self) -> Scan:
        mean_out = (self.mean_sum / max(self.n_mean, 1)).to(self.model.cfg.dtype)
        prompt_of_token = torch.arange(self.n).repeat_interleave(self.n_pos)
        return Scan(self.pair, self.persist, self.rel, mean_out, self.n_tokens, self.kept, self.rel_values,
                    prompt_of_token)
