"""The DLA audit (erasure/analysis/audit.py, audit_pool.py; docs/methods.md §9).

The engine runs each layer's ablated copies as one batch from that layer on and reduces every output to DLA scalars
inside hooks. Here every quantity is computed a second, independent way: the whole model run once per component
with an ordinary hook that ablates it, the logits from the model's own unembedding, each component's output from
the cache (erasure.mechanism.hooks.component_output) and the final LayerNorm part from its formula.
"""
import math

import numpy as np
import pytest
import torch

from erasure.analysis.audit import donors, downstream, run_audit
from erasure.analysis.audit_pool import AuditConfig, TokenValues, pooled_top, summarize_component, top_k
from erasure.mechanism.bootstrap import PromptBootstrap
from erasure.mechanism.dla import centres, dla
from erasure.mechanism.hooks import FINAL_SCALE, component_output, mlp_out_hook, z_hook
from erasure.mechanism.names import Component, all_components
from helpers import tiny_model

# float32 forward passes of O(1-10) logits, batched differently (copies x prompts from a layer on vs one full pass):
# observed differences ~1e-6; 2e-5 absolute + 1e-4 relative leaves ~10x room and is far below any effect tested.
ATOL, RTOL = 2e-5, 1e-4


def _by_hand(model, tokens, comp: Component, replacement):
    """ΔDE, TE and the heads / MLPs / final-norm parts of `comp`'s ablation, the long way (one full run)."""
    name = z_hook(comp.layer) if comp.is_head else mlp_out_hook(comp.layer)

    def ablate(x, hook):
        x = x.clone()
        new = torch.zeros_like(x) if replacement is None else replacement  # None: zero ablation
        if comp.is_head:
            x[:, :, comp.head] = new[:, :, comp.head]
        else:
            x[:] = new
        return x

    logits, clean = model.run_with_cache(tokens)
    with model.hooks(fwd_hooks=[(name, ablate)]):
        logits_abl, abl = model.run_with_cache(tokens)
    nxt = tokens[:, 1:]
    u = model.W_U.T[nxt]  # (b, p-1, d)
    sigma, sigma_abl = clean[FINAL_SCALE][:, :-1], abl[FINAL_SCALE][:, :-1]
    te = (logits.gather(-1, nxt[..., None]) - logits_abl.gather(-1, nxt[..., None]))[..., 0]
    centre = centres(model)

    def d(cache, c):
        return dla(component_output(model, cache, c)[:, :-1], sigma, u, centre)

    dde = d(clean, comp) - d(abl, comp)
    heads = sum((d(abl, c) - d(clean, c) for c in all_components(model.cfg.n_layers, model.cfg.n_heads)
                 if c.is_head and downstream(comp, c)), torch.zeros_like(dde))
    mlps = sum((d(abl, c) - d(clean, c) for c in all_components(model.cfg.n_layers, model.cfg.n_heads)
                if not c.is_head and downstream(comp, c)), torch.zeros_like(dde))
    final = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    r_abl = abl[final][:, :-1]
    r_abl = r_abl - r_abl.mean(-1, keepdim=True) if centre else r_abl
    ln = (r_abl * u).sum(-1) * (1 / sigma_abl.squeeze(-1) - 1 / sigma.squeeze(-1))
    return dde, te, heads, mlps, ln


def _check(model, tokens, ablation, replacements):
    cfg = AuditConfig(ablation, "next_token", 0.02, 0, batch_size=2)
    result = run_audit(model, tokens, cfg, {})
    for comp in all_components(model.cfg.n_layers, model.cfg.n_heads):
        tv = result.tokens[comp.name]
        dde, te, heads, mlps, ln = (x.numpy() for x in _by_hand(model, tokens, comp, replacements(comp)))
        for got, want in ((tv.delta_de, dde), (tv.total, te), (tv.heads, heads), (tv.mlps, mlps)):
            np.testing.assert_allclose(got[:, :-1], want, atol=ATOL, rtol=RTOL, err_msg=comp.name)
        np.testing.assert_allclose(tv.ln[:, :-1], ln, atol=ATOL, rtol=RTOL, err_msg=comp.name)
        assert np.abs(tv.delta_de[:, :-1]).max() > 1e-3  # an ablation that changes something
        assert not result.valid[:, -1].any() and result.valid[:, :-1].all()


@pytest.mark.parametrize("norm", ["LNPre", "RMSPre"])
def test_zero_ablation_by_hand(norm):
    """Every head and MLP of a tiny 4-layer model, zero-ablated: ΔDE, TE, the heads and MLPs parts, and the
    final-norm remainder equal the long-way computation, which also gives the norm part by its own formula
    centred(r') . u (1/σ' - 1/σ): so the parts are what they claim to be, not just a remainder."""
    model = tiny_model(norm)
    tokens = torch.randint(0, 100, (3, 12), generator=torch.Generator().manual_seed(1))
    _check(model, tokens, "zero", lambda comp: None)


def test_mean_and_resample_by_hand():
    """mean: the position-wise mean of the component's z / MLP output over the prompts; resample: the donor
    prompt's, the donors a derangement."""
    model = tiny_model()
    tokens = torch.randint(0, 100, (4, 10), generator=torch.Generator().manual_seed(2))
    _, cache = model.run_with_cache(tokens)

    def source(comp):
        return cache[z_hook(comp.layer) if comp.is_head else mlp_out_hook(comp.layer)]

    _check(model, tokens, "mean", lambda comp: source(comp).mean(0, keepdim=True).expand_as(source(comp)))
    d = donors(4, 0)
    assert sorted(d) == [0, 1, 2, 3] and all(d[i] != i for i in range(4))
    _check(model, tokens, "resample", lambda comp: source(comp)[torch.as_tensor(d)])


def test_post_norm_repair_adds_up():
    """Gemma-style norms after each sublayer: TE equals the model's own logit change, and the repair splits exactly
    (the layer's shared post-attention norm makes a head's ablation rescale its layer's other heads: counted as
    heads)."""
    model = tiny_model("RMSPre", post_norm=True)
    tokens = torch.randint(0, 100, (2, 10), generator=torch.Generator().manual_seed(3))
    result = run_audit(model, tokens, AuditConfig("zero", "next_token", 0.02, 0, 2), {})
    for comp in all_components(model.cfg.n_layers, model.cfg.n_heads):
        tv = result.tokens[comp.name]
        dde, te, *_ = (x.numpy() for x in _by_hand(model, tokens, comp, None))
        np.testing.assert_allclose(tv.total[:, :-1], te, atol=ATOL, rtol=RTOL, err_msg=comp.name)
        np.testing.assert_allclose(tv.delta_de[:, :-1], dde, atol=ATOL, rtol=RTOL, err_msg=comp.name)
    same_layer = result.tokens["L1H0"].heads
    assert np.abs(same_layer).max() > 0  # the post-norm's rescaling of L1's other heads is there


def test_pooled_top_by_hand():
    """Top-k pooling and a draw's reselection on a multiset, on numbers small enough to do by hand."""
    key = np.array([5.0, 1.0, 4.0, 3.0])  # tokens 0, 2 of prompt 0 and 1; token order by key: 0, 2, 3, 1
    prompt_of = np.array([0, 0, 1, 1])
    values = np.array([[1.0, 10.0, 2.0, 3.0]])
    weights = np.array([2.0, 1.0, 1.0, 1.0])
    assert pooled_top(key, values, weights, 2, prompt_of)[0] == pytest.approx((1 + 2) / (2 + 1))
    counts = np.array([[1, 1], [2, 0], [0, 2]])  # draw 1: prompt 0 twice; draw 2: prompt 1 twice
    draws = pooled_top(key, values, weights, 2, prompt_of, counts)[0]
    # draw 0 = the sample; draw 1: token 0 twice; draw 2: token 2 twice
    np.testing.assert_allclose(draws, [3 / 3, 2 / 4, 4 / 2])
    assert top_k(1000, 0.02) == 20 and top_k(10, 0.02) == 1


def test_null_when_the_output_hardly_changes():
    """A component whose ablation moves its DLA by under 1% of it gets null shares with the reason."""
    rng = np.random.default_rng(0)
    de = rng.normal(size=(4, 50))
    tv = TokenValues(delta_de=1e-3 * de, total=1e-3 * de, heads=0 * de, mlps=0 * de, de_clean=de)
    valid = np.ones((4, 50), bool)
    cfg = AuditConfig("resample", "next_token", 0.1, 0, 1)
    row = summarize_component(tv, valid, cfg, PromptBootstrap.create(4, 50, 0, 0.95), logit_rms=1.0)
    assert row["repair_share"] is None and row["heads_share"] is None and "hardly changes" in row["null_reason"]
    tv.delta_de = 0.5 * de
    row = summarize_component(tv, valid, cfg, PromptBootstrap.create(4, 50, 0, 0.95), logit_rms=1.0)
    assert row["repair_share"] is not None and row["null_reason"] is None
    assert math.isclose(row["repair_share"], row["heads_share"] + row["mlps_share"] + row["ln_share"], abs_tol=1e-12)


@pytest.mark.slow  # 22 forward passes of planted-4l over 3 prompts: ~20 s
def test_planted_writer(planted):
    """planted-4l, zero ablation: L0H2's repair share is the planted total erasure and its erasers carry it;
    the last layer's MLP repairs through nothing but the final norm (its heads/MLP parts are exactly zero)."""
    model, truth = planted
    from erasure.analysis.prompts import offline_rows

    tokens = offline_rows("text", 3, 256, 5235, model.tokenizer, 1, 0)
    writer = Component.parse(truth.writer)
    erasers = [Component.parse(e) for e in truth.erasers]
    cfg = AuditConfig("zero", "next_token", 0.02, 0, 3)
    result = run_audit(model, tokens, cfg, {writer.name: erasers})
    boot = PromptBootstrap.create(3, 200, 0, 0.95)
    row = summarize_component(result.tokens[writer.name], result.valid, cfg, boot, result.logit_rms)
    # tolerances as paper/claims.yaml's planted checks state them (docs/methods.md §9.5)
    assert abs(row["eraser_share"] - truth.total_erasure) <= truth.tolerances["total_erasure"]
    assert abs(row["repair_share"] - truth.total_erasure) <= 0.08
    last = summarize_component(result.tokens["MLP3"], result.valid, cfg, boot, result.logit_rms)
    assert last["heads_share"] == 0.0 and last["mlps_share"] == 0.0 and last["ln_share"] == last["repair_share"]
