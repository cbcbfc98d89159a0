"""Pass 1 of discovery: stream every prompt and accumulate the pair, persistence and relevance histograms.

Per batch only the component outputs (tokens x components x d_model) live in memory; they are reduced in token
chunks to the writer x later-component PR matrix.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Int
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from erasure.analysis.discovery.layout import Layout, capture_outputs, pair_ratios, persistence
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


def scan(
    model: HookedTransformer, tokens: Int[torch.Tensor, "n p"], layout: Layout, dp: Discovery, keep: torch.Tensor
) -> Scan:
    """Stream the prompts; accumulate the pair, persistence and relevance histograms, and keep the per-token
    values of the persistence series `keep` and of the relevance ratio (float32, for the prompt bootstrap)."""
    hist = dict(bins=dp.hist_bins, scale=dp.hist_scale, max_abs=dp.hist_max)
    pair = AsinhHistogram(len(layout.pair_w), **hist)
    persist = AsinhHistogram(len(layout.ser_w), **hist)
    rel = AsinhHistogram(len(layout.writers), **hist)
    mean_sum = torch.zeros(layout.n, model.cfg.d_model, dtype=torch.float64)
    n_mean, n_tokens = 0, 0
    n, p = tokens.shape
    pos = positions(p, dp.include_bos)
    n_pos = len(range(p)[pos])
    kept = torch.empty(n * n_pos, len(keep))
    rel_values = torch.empty(n * n_pos, len(layout.writers))
    own_w = layout.own[layout.writer_rows]
    bar = tqdm(total=n, desc="discover: scan", unit="prompt")
    for start in range(0, n, dp.batch_size):
        batch = tokens[start : start + dp.batch_size]
        outs, norms, _ = capture_outputs(model, batch, layout)
        mean_sum += outs[:, 1:].sum((0, 1)).double()
        n_mean += outs.shape[0] * (p - 1)
        outs = outs[:, pos].reshape(-1, layout.n, outs.shape[-1])
        norms = norms[:, pos].reshape(-1, norms.shape[-1])
        n_tokens += outs.shape[0]
        for a in range(0, outs.shape[0], TOKEN_CHUNK):
            chunk = outs[a : a + TOKEN_CHUNK]
            t = chunk.shape[0]
            ratios = pair_ratios(chunk, layout)
            pair.update(ratios.view(t, -1)[:, layout.pair_flat])
            series = persistence(ratios, layout).view(t, -1)[:, layout.ser_flat]
            persist.update(series)
            w_norm = chunk[:, layout.writer_rows].norm(dim=-1)
            rel_chunk = w_norm / norms[a : a + t][:, own_w]
            rel.update(rel_chunk)
            at = n_tokens - outs.shape[0] + a
            kept[at : at + t] = series[:, keep]
            rel_values[at : at + t] = rel_chunk
            del ratios
        bar.update(len(batch))
    bar.close()
    prompt_of_token = torch.arange(n).repeat_interleave(n_pos)
    return Scan(pair, persist, rel, (mean_sum / max(n_mean, 1)).float(), n_tokens, kept, rel_values, prompt_of_token)
