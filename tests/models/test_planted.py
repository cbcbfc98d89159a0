"""planted-4l against its planted truth (not against copied outputs).

One model build and a few forward passes on 4 prompts x 128 tokens of offline corpus text (BOS at
position 0), shared by every test through module-scoped fixtures.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from erasure.analysis.corpus import iter_documents
from erasure.models.planted import ALIGNED_WORDS, build_planted_model, planted_tokenizer
from erasure.planted_truth import PlantedTruth, planted_truth

N_PROMPTS, SEQ = 4, 128
N_RANDOM, N_FIG5 = 8, 24  # resampling rows and prompt length for the Fig 5 check
FIG5_WORDS = [" bottom", " top", " State", " University", " __", " get", " Church", " church"]
GELU_4L_VOCAB = 48262


def comp(name: str) -> tuple[int, int]:
    return int(name[1]), int(name[3:])


def pr(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (v * w).sum(-1) / (w * w).sum(-1)


def median(x: torch.Tensor) -> float:
    return float(np.median(x.detach().flatten().numpy()))


@pytest.fixture(scope="module")
def truth() -> PlantedTruth:
    return planted_truth()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_planted_model(seed=0)
    m.cfg.use_attn_result = True
    m.cfg.use_split_qkv_input = True
    return m


@pytest.fixture(scope="module")
def tokens(model) -> torch.Tensor:
    """(N_PROMPTS + N_RANDOM, SEQ) rows of corpus text joined by EOS, BOS at position 0."""
    tok = model.tokenizer
    need = (N_PROMPTS + N_RANDOM) * (SEQ - 1)
    stream: list[int] = []
    for doc in iter_documents("text"):  # the pydoc topics come first: no stdlib parsing needed
        stream += tok(doc, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        if len(stream) >= need:
            break
    body = torch.tensor(stream[:need]).view(N_PROMPTS + N_RANDOM, SEQ - 1)
    return torch.cat([torch.full((body.shape[0], 1), tok.bos_token_id), body], dim=1)


CHECKPOINTS = ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.hook_resid_{k}" for i in range(4) for k in ("mid", "post")]


@pytest.fixture(scope="module")
def runs(model, tokens):
    """Clean run (with cache) and the V-composition-patched run of docs/methods.md §4.1 on the first 4 rows."""
    toks = tokens[:N_PROMPTS]
    logits, cache = model.run_with_cache(toks, names_filter=lambda n: not n.endswith(("_input", "hook_normalized")))
    o = cache["blocks.0.attn.hook_result"][:, :, 2]
    clean_scale = cache["blocks.2.ln1.hook_scale"]

    def sub_writer(v_input, hook):  # (b, p, n_heads, d): remove o from every layer-2 head's value input
        return v_input - o[:, :, None, :]

    def freeze_scale(scale, hook):
        return clean_scale

    patched = {}

    def save(x, hook):
        patched[hook.name] = x.detach().clone()

    hooks = [("blocks.2.hook_v_input", sub_writer), ("blocks.2.ln1.hook_scale", freeze_scale)]
    hooks += [(name, save) for name in CHECKPOINTS + ["blocks.2.attn.hook_result"]]
    model.run_with_hooks(toks, fwd_hooks=hooks, return_type=None)
    return {"logits": logits, "cache": cache, "o": o, "patched": patched}


# ---------------------------------------------------------------- shape, determinism, weights


def test_shape_matches_processed_gelu4l(model):
    cfg = model.cfg
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp) == (4, 512, 8, 64, 2048)
    assert (cfg.d_vocab, cfg.d_vocab_out, cfg.n_ctx) == (GELU_4L_VOCAB, GELU_4L_VOCAB, 1024)
    assert cfg.act_fn == "gelu" and cfg.normalization_type == "LNPre"
    assert cfg.positional_embedding_type == "standard" and cfg.default_prepend_bos
    assert model.W_E.shape == (GELU_4L_VOCAB, 512) and model.W_U.shape == (512, GELU_4L_VOCAB)
    assert model.W_pos.shape == (1024, 512)
    assert model.W_E.data_ptr() != model.W_U.data_ptr()  # untied
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert not any(torch.isnan(p).any() or torch.isinf(p).any() for p in model.parameters())
    assert model.tokenizer.bos_token_id == 1


def test_written_weights_centred_and_no_value_bias(model):
    written = [model.W_E, model.W_pos, model.W_O, model.W_out]
    for w in written:
        assert w.mean(-1).abs().max() < 1e-5
    assert model.W_U.mean(-1).abs().max() < 1e-5  # center_unembed: centred over the vocabulary
    assert model.b_V.abs().max() == 0


@pytest.mark.slow  # builds the model a second time
def test_same_seed_same_weights(model):
    again = build_planted_model(seed=0)
    mine, theirs = model.state_dict(), again.state_dict()
    assert mine.keys() == theirs.keys()
    for name in mine:
        assert torch.equal(mine[name], theirs[name]), name


# ---------------------------------------------------------------- planted truth itself


def test_truth_follows_from_fractions(truth):
    assert dataclasses.is_dataclass(truth)
    with pytest.raises(dataclasses.FrozenInstanceError):
        truth.writer = "L0H0"  # type: ignore[misc]
    assert truth.writer == "L0H2" and truth.token_head == "L3H1"
    assert set(truth.erasers) == {f"L2H{h}" for h in range(2, 8)}
    assert truth.total_erasure == pytest.approx(sum(truth.erasers.values()))
    assert truth.total_erasure == pytest.approx(0.87)
    assert truth.resid_after_erasure == pytest.approx(1 - truth.total_erasure)
    assert truth.resid_after_erasure_patched == pytest.approx(1.0)
    assert set(truth.tolerances) == set(truth.tolerance_reasons)
    assert all(v > 0 for v in truth.tolerances.values())
    assert all(isinstance(r, str) and r for r in truth.tolerance_reasons.values())


# ---------------------------------------------------------------- paper Figs 1-3 on the planted model


def test_writer_absent_before_and_persists_through_layer1(runs, truth):
    o, cache = runs["o"], runs["cache"]
    assert median(pr(cache["blocks.0.hook_resid_pre"], o).abs()) < 1e-4
    for name in CHECKPOINTS[1:5]:  # resid_mid0 .. resid_post1
        assert abs(median(pr(cache[name], o)) - 1.0) < truth.tolerances["resid_post1"], name


def test_eraser_medians_match_planted_fractions(runs, truth):
    o, cache = runs["o"], runs["cache"]
    res = cache["blocks.2.attn.hook_result"]
    for name, f in truth.erasers.items():
        layer, head = comp(name)
        got = median(pr(res[:, :, head], o))
        assert abs(got - (-f)) < truth.tolerances["eraser_pr"], (name, got, -f)
    total = sum(res[:, :, comp(n)[1]] for n in truth.erasers)
    assert abs(median(pr(total, o)) + truth.total_erasure) < truth.tolerances["total_erasure"]
    mid2 = median(pr(cache["blocks.2.hook_resid_mid"], o))
    assert abs(mid2 - truth.resid_after_erasure) < truth.tolerances["resid_after_erasure"]


def test_other_components_do_not_write_the_writer_direction(model, runs, truth):
    o, cache = runs["o"], runs["cache"]
    skip = {truth.writer, *truth.erasers}
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            if f"L{layer}H{head}" in skip:
                continue
            got = median(pr(cache[f"blocks.{layer}.attn.hook_result"][:, :, head], o))
            assert abs(got) < truth.tolerances["other_pr"], (layer, head, got)
        got = median(pr(cache[f"blocks.{layer}.hook_mlp_out"], o))
        assert abs(got) < truth.tolerances["other_pr"], (f"MLP{layer}", got)


def test_vcomp_patch_removes_the_erasure(runs, truth):
    o, patched = runs["o"], runs["patched"]
    res = patched["blocks.2.attn.hook_result"]
    for name in truth.erasers:
        got = median(pr(res[:, :, comp(name)[1]], o))
        assert abs(got) < truth.tolerances["eraser_pr_patched"], (name, got)
    mid2 = median(pr(patched["blocks.2.hook_resid_mid"], o))
    assert abs(mid2 - truth.resid_after_erasure_patched) < truth.tolerances["resid_after_erasure_patched"]
    # the patch leaves layers 0-1 alone
    assert torch.allclose(patched["blocks.1.hook_resid_post"], runs["cache"]["blocks.1.hook_resid_post"])


def test_clean_minus_patched_equals_attention_weighted_ov(model, runs, truth):
    """docs/methods.md §4.4 cross-check: Σ_h (clean − patched) = Σ_h Σ_s A[p,s] (o_s/σ_2,s) W_V W_O."""
    cache, o = runs["cache"], runs["o"]
    heads = [comp(n)[1] for n in truth.erasers]
    diff = sum(cache["blocks.2.attn.hook_result"][:, :, h] - runs["patched"]["blocks.2.attn.hook_result"][:, :, h]
               for h in heads)
    scale = cache["blocks.2.ln1.hook_scale"][:, :, 0]  # (b, p, 1), same for every head
    x = (o - o.mean(-1, keepdim=True)) / scale
    attn = model.blocks[2].attn
    vc = sum(torch.einsum("bps,bsd->bpd", cache["blocks.2.attn.hook_pattern"][:, h], x @ attn.W_V[h] @ attn.W_O[h])
             for h in heads)
    assert torch.allclose(diff, vc, atol=1e-4 * float(diff.abs().max()))


# ---------------------------------------------------------------- paper Fig 4


def test_fig4_vcomp_dla_tracks_writer_dla(model, runs, truth):
    cache, o, logits = runs["cache"], runs["o"], runs["logits"]
    heads = [comp(n)[1] for n in truth.erasers]
    vc = sum(cache["blocks.2.attn.hook_result"][:, :, h] - runs["patched"]["blocks.2.attn.hook_result"][:, :, h]
             for h in heads)
    top2 = logits.topk(2, dim=-1).indices
    u = (model.W_U[:, top2[..., 0]] - model.W_U[:, top2[..., 1]]).permute(1, 2, 0)
    sf = cache["ln_final.hook_scale"]
    x = (((o - o.mean(-1, keepdim=True)) / sf) * u).sum(-1).flatten().numpy()
    y = (((vc - vc.mean(-1, keepdim=True)) / sf) * u).sum(-1).flatten().numpy()
    slope, _ = np.polyfit(x, y, 1)
    r = np.corrcoef(x, y)[0, 1]
    assert abs(slope + truth.total_erasure) < truth.tolerances["dla_slope"], slope
    assert abs(r + 1.0) < truth.tolerances["dla_r"], r
    assert x.std() > 0.1  # the writer has a real DLA spread on the top-2 directions


# ---------------------------------------------------------------- token dependence and paper Fig 5


def test_writer_token_independent_token_head_token_dependent(model, tokens, runs, truth):
    """Same positions, different tokens: the writer's output barely moves, the token head's changes."""
    lh, hh = comp(truth.token_head)
    names = ("blocks.0.attn.hook_result", f"blocks.{lh}.attn.hook_result")
    ca = runs["cache"]  # rows 0..3
    _, cb = model.run_with_cache(tokens[N_PROMPTS : 2 * N_PROMPTS], names_filter=lambda n: n in names,
                                 return_type=None)

    def rel(name, head):
        a, b = ca[name][:, 1:, head], cb[name][:, 1:, head]  # position 0 is BOS in both
        return median((a - b).norm(dim=-1) / a.norm(dim=-1))

    assert rel(names[0], 2) < truth.tolerances["writer_token_dependence"]
    assert rel(names[1], hh) > 0.5


def _resampled_dla(model, prompt, random_rows, layer, head):
    """docs/methods.md §4.5: clean DLA at the last position and DLAs with the head's last-position ln1 input
    resampled from each random row (same position); clean σ_f, u = top-2 difference of the clean model."""
    n = prompt.shape[1]
    hook = f"blocks.{layer}.ln1.hook_normalized"
    logits, clean = model.run_with_cache(prompt, names_filter=lambda x: x in (hook, "ln_final.hook_scale",
                                         f"blocks.{layer}.attn.hook_result"))
    t1, t2 = logits[0, -1].topk(2).indices
    u = model.W_U[:, t1] - model.W_U[:, t2]
    sf = clean["ln_final.hook_scale"][0, -1]
    clean_dla = float(clean[f"blocks.{layer}.attn.hook_result"][0, -1, head] / sf @ u)
    _, rnd = model.run_with_cache(random_rows[:, :n], names_filter=lambda x: x == hook, stop_at_layer=layer + 1)
    donor = rnd[hook][:, n - 1, head]

    def patch(x, hook):
        x = x.clone()
        x[:, -1, head] = donor
        return x

    out = {}

    def save(x, hook):
        out["r"] = x[:, -1, head]

    model.run_with_hooks(prompt.expand(random_rows.shape[0], -1), stop_at_layer=layer + 1,
                         fwd_hooks=[(hook, patch), (f"blocks.{layer}.attn.hook_result", save)])
    patched = (out["r"] / sf) @ u
    return clean_dla, float(patched.median())


def test_fig5_resampling_moves_token_head_not_writer(model, tokens, truth):
    prompt = tokens[:1, :N_FIG5]
    random_rows = tokens[N_PROMPTS:]
    lw, hw = comp(truth.writer)
    w_clean, w_patched = _resampled_dla(model, prompt, random_rows, lw, hw)
    lt, ht = comp(truth.token_head)
    t_clean, t_patched = _resampled_dla(model, prompt, random_rows, lt, ht)
    assert abs(w_patched - w_clean) < 0.05 * max(abs(w_clean), 0.1)
    assert t_clean > 1.0  # large DLA on the clean top-2 logit difference
    assert abs(t_patched - t_clean) > 0.5 * t_clean


# ---------------------------------------------------------------- tokenizer


def test_tokenizer_ids_and_special_tokens(tokens):
    tok = planted_tokenizer()
    assert (tok.eos_token_id, tok.bos_token_id, tok.pad_token_id) == (0, 1, 2)
    assert len(tok) < GELU_4L_VOCAB and int(tokens.max()) < GELU_4L_VOCAB
    assert (tokens[:, 0] == 1).all() and not (tokens[:, 1:] == 1).any()
    for w in FIG5_WORDS:
        assert len(tok(w, add_special_tokens=False)["input_ids"]) == 1, w
    text = "class MyClass:\n\tdef __init__(self, x=2023):"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert tok(text)["input_ids"] == [1] + ids  # BOS prepended by default, like TL's gelu-4l tokenizer


def test_model_to_tokens_prepends_single_bos(model):
    toks = model.to_tokens("I went to university at Michigan")
    assert toks[0, 0] == 1 and (toks[0, 1:] != 1).all()
    assert model.to_tokens("x", prepend_bos=False)[0, 0] != 1


def test_aligned_words_top_the_writer_direction(model, runs):
    """The paper's aligned tokens are planted as the tokens L0H2's mean output boosts most."""
    o, sf = runs["o"], runs["cache"]["ln_final.hook_scale"]
    mean_dir = ((o - o.mean(-1, keepdim=True)) / sf).mean(dim=(0, 1))
    scores = mean_dir @ model.W_U
    top = set(scores.topk(len(ALIGNED_WORDS)).indices.tolist())
    ids = {model.tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in ALIGNED_WORDS}
    assert top == ids
