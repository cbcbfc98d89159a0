"""Automatic writer/eraser discovery: which component's output is erased, by whom, and through V.

Every head and MLP is a candidate writer w. All statistics are projection ratios PR(c, w) = <c, w>/|w|^2 per
(prompt, position) token, pooled over the prompt set like the authors (docs/methods.md §3).

Persistence. Raw PR(resid_k, w) is dominated by the growth of the residual norm in deep models (SmolLM2), so
persistence counts only what is written from w onward:

    P_k(w) = PR(w + sum of c written after w and before checkpoint k, w) = 1 + sum_c PR(c, w)

where "c after w" means c reads w: heads and MLPs of later layers, and the MLP of w's own layer when w is a head
(own-layer heads run in parallel with w). Biases (b_O, b_out) are attributed to no component and not counted.

Rules (thresholds are params, section `discovery`):
- Writers: every component of layers 0..n_layers-2 (an eraser must sit in a later layer, like the pipeline's
  params check).
- Window: the score looks at the checkpoints after w up to resid_post of layer w.layer + `horizon_layers`. In a
  deep model the last layers write outputs hundreds of times larger than an early head's; their small negative
  cosine with w would otherwise give P_k = -200 (SmolLM2: MLP29 onto layer-0 heads), which is not erasure.
- Writer score: erasure(w) = 1 - min over the window of median_tokens P_k(w) (the most of w's output that is gone
  at any point of the window). Also reported: 1 - median P at the last checkpoint.
- Relevance filters (a writer failing one is listed with `excluded_by` and never selected):
  `min_rel_norm`: median |w| / |resid at w's own checkpoint| must reach it, so that writers whose outputs are
  tiny cannot win by noise (their PRs are ratios with a tiny denominator);
  `max_overshoot`: the minimum median P in the window must be >= -max_overshoot (later components writing far
  more than w along -w cancel a shared direction, they do not erase w);
  `require_consistent`: q75 of P_k(w) at the minimum must be < 1, i.e. at least 3/4 of the tokens lost part of
  w (noise writers have a median below 1 by chance but an interquartile range straddling it).
- Erasing layer: the window layer l with the largest drop median P(resid_post_{l-1}) - median P(resid_post_l).
- Erasers (for the `top_writers` best-scoring relevant writers): the components c of the erasing layer (scope
  `layer`) or of every window layer (scope `all`) whose median PR(c, w) < -`eraser_threshold`.
- V-composition test: on the first `n_vcomp_prompts` prompts, the patch of paper Fig 3 (erasure.mechanism.vcomp) removes
  w's clean output from the value input of every layer holding an eraser head. Reported per eraser (and for the
  per-token sum over the erasers): clean and patched medians and the V-composition share 1 - patched/clean.
- Centred control: the same persistence from PR(c - mean c, w - mean w) (position-constant means over non-BOS
  tokens), to tell erasure of token information from the cancelling of a shared bias-like direction.

Modules: `layout` (which component reads which; the clean pass capturing every output), `scan` (the streaming
pass over every prompt), `ranking` (writer scores, relevance filters, eraser selection), `vcomp_pass` (the
V-composition test and centred control on a prompt subset), `discover` (the whole discovery and its record).
Quantiles of the full scan come from erasure.mechanism.histogram (error at most one bin width). Everything is
deterministic (no sampling): same params and prompts give the same metrics.
"""
