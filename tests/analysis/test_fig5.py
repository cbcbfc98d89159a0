"""Paper Fig 5 resampling (docs/methods.md §4.5): only the chosen head's last-position input changes; on the planted
model the positional writer's DLA survives resampling while the token-dependent head's does not."""
import json

import numpy as np
import pytest
import torch

from erasure.analysis.fig5 import (
    PromptSpec,
    analyse_prompt,
    auto_head,
    clean_head_dla,
    clean_run,
    comparison_head,
    copies_per_pass,
    input_hook,
    prompt_specs,
    resampled_head_out,
    resampled_mlp_out,
    source_inputs,
    split_qkv,
    strip_values,
    tokenize_prompt,
)
from erasure.errors import ParamError
from erasure.mechanism.dla import centres, dla
from erasure.mechanism.names import Component
from erasure.params.sections import Fig5, Stats
from erasure.plotting.fig5 import plot_fig5
from helpers import repo_params, tiny_model

# float32 reruns of the same forward pass in a different batch shape agree to ~1e-7; 1e-5 leaves 100x margin.
ATOL = 1e-5


def _rows(n, seq, vocab, bos, seed):
    rows = torch.randint(3, vocab, (n, seq), generator=torch.Generator().manual_seed(seed))
    rows[:, 0] = bos
    return rows


def _patched_z(model, prompt, head, normalized):
    """Every head's z at every position in the patched run (the authors' hook, written out here)."""
    store = {}

    def overwrite(x, hook):
        x = x.clone()
        x[:, -1, head.head] = normalized
        return x

    def keep(z, hook):
        store["z"] = z

    with split_qkv(model):
        model.run_with_hooks(prompt.expand(normalized.shape[0], -1), fwd_hooks=[
            (f"blocks.{head.layer}.ln1.hook_normalized", overwrite), (f"blocks.{head.layer}.attn.hook_z", keep)])
    return store["z"]


@pytest.mark.parametrize("norm,kv_heads", [("LNPre", None), ("RMSPre", 2)])
def test_only_the_head_at_the_last_position_changes(norm, kv_heads):
    """Other heads (also the head sharing a KV group under GQA) and earlier positions keep their clean z."""
    model = tiny_model(norm, kv_heads)
    prompt, rows = _rows(1, 12, 100, 1, 0), _rows(6, 12, 100, 1, 1)
    head = Component(2, 1)  # under GQA with 2 KV heads, head 0 shares its key/value group
    normalized = source_inputs(model, rows, [head], batch_size=4)[input_hook(head)]
    z = _patched_z(model, prompt, head, normalized)
    _, cache = model.run_with_cache(prompt)
    diff = (z - cache[f"blocks.{head.layer}.attn.hook_z"]).abs()
    others = [h for h in range(model.cfg.n_heads) if h != head.head]
    assert diff[:, :, others].max() < ATOL
    assert diff[:, :-1, head.head].max() < ATOL
    assert diff[:, -1, head.head].amax(-1).min() > 1e-3  # the patch does something (every resampled row)
    assert not model.cfg.use_split_qkv_input  # flags restored
    # resampled_head_out (batched, stops after layer L) gives the same output
    out = resampled_head_out(model, prompt, head, normalized, batch_size=4)
    torch.testing.assert_close(out, z[:, -1, head.head] @ model.blocks[head.layer].attn.W_O[head.head], atol=ATOL, rtol=0)


def test_resampling_with_the_prompt_itself_is_the_clean_output():
    model = tiny_model()
    prompt = _rows(1, 10, 100, 1, 3)
    head = Component(1, 3)
    normalized = source_inputs(model, prompt.expand(3, -1), [head], batch_size=2)[input_hook(head)]
    out = resampled_head_out(model, prompt, head, normalized, batch_size=2)
    clean = clean_run(model, prompt).head_out[1, 3]
    torch.testing.assert_close(out, clean.expand_as(out), atol=ATOL, rtol=0)


def test_tokenize_prompt_equals_to_tokens(planted):
    model, _ = planted
    text = "It's in the cupboard, either on the top or on the"
    assert tokenize_prompt(model, text, model.tokenizer.bos_token_id).tolist() == model.to_tokens(text).tolist()


def test_planted_writer_survives_resampling_token_head_does_not(planted):
    """The planted writer is positional: its DLA keeps its clean value whatever the current token. The planted
    token head's output depends on the current token: resampling moves its DLA far from the clean value."""
    model, truth = planted
    bos = model.tokenizer.bos_token_id
    prompt = tokenize_prompt(model, "The church I go to is the Seventh-day Adventist", bos)
    rows = _rows(32, prompt.shape[1], len(model.tokenizer), bos, 7)
    run = clean_run(model, prompt)
    top2 = torch.topk(run.logits, 2).indices
    u = model.W_U[:, top2[0]] - model.W_U[:, top2[1]]
    clean = clean_head_dla(run, u, centres(model))
    moves = {}
    for name in (truth.writer, truth.token_head):
        head = Component.parse(name)
        normalized = source_inputs(model, rows, [head], batch_size=32)[input_hook(head)]
        out = resampled_head_out(model, prompt, head, normalized, batch_size=32)
        values = dla(out, run.scale_final.expand(out.shape[0]), u).numpy()
        moves[name] = (float(clean[head.layer, head.head]), values)
    # positional by construction: the writer's output changes by at most writer_token_dependence (relative), and
    # so does its DLA (linear in o, same sigma_f and u); measured: every resampled value within 0.3% of clean
    c, values = moves[truth.writer]
    tol = truth.tolerances["writer_token_dependence"]
    assert abs(c) > 0.1 and np.abs(values - c).max() <= tol * abs(c), (c, values)
    # the token head carries the clean top-2 difference (planted logit ~ 8) and loses it when resampled
    c, values = moves[truth.token_head]
    assert c > 1.0 and abs(np.median(values) - c) >= 0.5 * c, (c, np.median(values))


@pytest.mark.parametrize("direction", ["top2", "pair"])
def test_analyse_prompt_metrics_on_planted(planted, tmp_path, direction):
    model, truth = planted
    bos = model.tokenizer.bos_token_id
    settings = Fig5.model_validate(
        {**repo_params()["fig5"], "direction": direction, "n_resample": 20, "seed": 0})
    spec = PromptSpec("p1", "class MyClass:\n\tdef", (" get", " __"), Component(3, 5))
    assert all(len(model.to_tokens(t, prepend_bos=False)[0]) == 1 for t in spec.pair)  # single tokens here
    rows = _rows(12, 16, len(model.tokenizer), bos, 2)  # fewer rows than n_resample: all 12 are used
    stats = Stats.model_validate({**repo_params()["stats"], "n_bootstrap": 50})
    res = analyse_prompt(model, spec, Component.parse(truth.writer), rows, settings, stats, bos, budget_bytes=2**30)
    out = strip_values(res)
    assert set(out) == {"text", "top2", "top2_ids", "direction", "logit_diff", "top2_logit_diff", "paper_pair",
                        "paper_pair_logit_diff", "writer_clean_dla", "writer", "writer_input", "comparison_head",
                        "comparison_source", "auto_head", "n_resample", "heads"}
    assert out["direction"] == direction
    assert out["logit_diff"] == out["top2_logit_diff" if direction == "top2" else "paper_pair_logit_diff"]
    assert out["writer_clean_dla"][direction] == pytest.approx(out["heads"][truth.writer]["clean"], abs=1e-6)
    if not out["paper_pair"]["matches_top2"]:  # two different directions give two different writer DLAs
        assert out["writer_clean_dla"]["top2"] != out["writer_clean_dla"]["pair"]
    assert out["n_resample"] == 12 and out["writer"] == truth.writer and out["comparison_head"] == "L3H5"
    assert out["top2_logit_diff"] >= 0 and out["auto_head"] != truth.writer
    assert {truth.writer, "L3H5", out["auto_head"]} == set(out["heads"])
    for h in out["heads"].values():
        assert set(h) == {"clean", "resampled"}
        r = h["resampled"]
        assert set(r) == {"median", "q25", "q75", "q12_5", "q87_5"} | {
            f"{k}{s}" for k in ("median", "q25", "q75") for s in ("_low", "_high")}
        assert r["q12_5"] <= r["q25"] <= r["median"] <= r["q75"]
        assert r["median_low"] <= r["median_high"] and r["q25_low"] <= r["q75_high"]
    json.dumps(out)
    plot_fig5({"p1": out}, tmp_path / "fig5.png", "planted-4l", dpi=120)
    assert (tmp_path / "fig5.png").stat().st_size > 10_000


def test_prompt_specs_pair_each_prompt_with_its_head():
    fig5 = Fig5.model_validate(repo_params()["fig5"])
    named = repo_params()["models"]["planted-4l"]["fig5_comparison_heads"]
    specs = prompt_specs(fig5, [Component.parse(h) for h in named])
    assert [s.key for s in specs] == ["p1", "p2", "p3", "p4"]
    assert specs[2].text == "class MyClass:\n\tdef" and specs[0].pair == (" bottom", " top")
    assert [s.comparison_head.name for s in specs] == ["L3H1", "L2H1", "L3H5", "L2H2"]
    assert [s.comparison_head for s in prompt_specs(fig5, "auto")] == [None] * 4


def test_auto_comparison_is_the_runner_up_head_by_clean_dla():
    clean = torch.tensor([[0.5, -3.0], [2.0, 0.1]])  # |DLA| order: L0H1, L1H0, L0H0, L1H1
    assert auto_head(clean, Component(0, 1)) == Component(1, 0)
    assert comparison_head(clean, Component(0, 1), None) == Component(0, 0)
    assert auto_head(clean, Component(1)) == Component(0, 1)  # an MLP writer excludes no head
    assert comparison_head(clean, Component(1), None) == Component(1, 0)
    assert comparison_head(clean, Component(1), Component(1, 1)) == Component(1, 1)  # a named head is kept


def test_mlp_resampled_with_the_prompt_itself_is_the_clean_output():
    model = tiny_model()
    prompt = _rows(1, 10, 100, 1, 3)
    mlp = Component(1)
    normalized = source_inputs(model, prompt.expand(3, -1), [mlp], batch_size=2)[input_hook(mlp)]
    out = resampled_mlp_out(model, prompt, mlp, normalized, batch_size=2)
    torch.testing.assert_close(out, clean_run(model, prompt).mlp_out[1].expand_as(out), atol=ATOL, rtol=0)


def test_mlp_resampled_output_is_the_mlp_on_each_unrelated_rows_input():
    """The MLP reads one vector per position: with the last position's ln2 input replaced by an unrelated row's,
    its output there is what that row's own run gives, whatever the prompt (and unlike the prompt's clean one)."""
    model = tiny_model()
    prompt, rows = _rows(1, 12, 100, 1, 0), _rows(5, 12, 100, 1, 1)
    mlp = Component(2)
    normalized = source_inputs(model, rows, [mlp], batch_size=2)[input_hook(mlp)]
    _, own = model.run_with_cache(rows)
    torch.testing.assert_close(normalized, own["blocks.2.ln2.hook_normalized"][:, -1], atol=ATOL, rtol=0)
    out = resampled_mlp_out(model, prompt, mlp, normalized, batch_size=2)
    torch.testing.assert_close(out, own["blocks.2.hook_mlp_out"][:, -1], atol=ATOL, rtol=0)
    assert (out - clean_run(model, prompt).mlp_out[2]).abs().amax(-1).min() > 1e-3  # the patch does something


def test_analyse_prompt_with_an_mlp_writer(planted):
    """An MLP writer (planted-4l's MLP1, a real component but no erased writer): its clean DLA is its hook_mlp_out
    at the last position, and it is resampled through its own input (ln2); the heads beside it are chosen as for
    a head writer, with auto comparison."""
    model, _ = planted
    bos = model.tokenizer.bos_token_id
    settings = Fig5.model_validate({**repo_params()["fig5"], "n_resample": 8, "seed": 0})
    stats = Stats.model_validate({**repo_params()["stats"], "n_bootstrap": 50})
    spec = PromptSpec("p3", "class MyClass:\n\tdef", (" get", " __"), None)
    rows = _rows(8, 16, len(model.tokenizer), bos, 2)
    out = strip_values(analyse_prompt(model, spec, Component(1), rows, settings, stats, bos, budget_bytes=2**30))
    tokens = tokenize_prompt(model, spec.text, bos)
    _, cache = model.run_with_cache(tokens)
    u = model.W_U[:, out["top2_ids"][0]] - model.W_U[:, out["top2_ids"][1]]
    expected = float(dla(cache["blocks.1.hook_mlp_out"][0, -1], cache["ln_final.hook_scale"][0, -1, 0], u))
    assert out["heads"]["MLP1"]["clean"] == pytest.approx(expected, abs=1e-5)
    assert out["writer_clean_dla"]["top2"] == pytest.approx(expected, abs=1e-5)
    assert out["writer_input"].startswith("ln2") and out["comparison_source"].startswith("auto")
    assert set(out["heads"]) == {"MLP1", out["comparison_head"], out["auto_head"]}
    assert out["comparison_head"] != out["auto_head"]
    run = clean_run(model, tokens)
    ranked = sorted(((abs(float(v)), i) for i, v in enumerate(clean_head_dla(run, u, centres(model)).flatten())),
                    reverse=True)
    n_heads = model.cfg.n_heads
    assert [out["auto_head"], out["comparison_head"]] == [
        Component(i // n_heads, i % n_heads).name for _, i in ranked[:2]]


@pytest.mark.parametrize("pair", [[" get", " get"], [" get", " MyClass.method"]])
def test_pair_direction_needs_two_different_single_tokens(planted, pair):
    model, truth = planted
    settings = Fig5.model_validate(
        {**repo_params()["fig5"], "direction": "pair", "n_resample": 4, "seed": 0})
    spec = PromptSpec("p3", "class MyClass:\n\tdef", tuple(pair), Component(3, 5))
    rows = _rows(4, 16, len(model.tokenizer), 1, 2)
    with pytest.raises(ParamError, match=r"fig5\.prompts\.p3\.pair = .* is not allowed: each side must be one token"):
        analyse_prompt(model, spec, Component.parse(truth.writer), rows, settings,
                       Stats.model_validate(repo_params()["stats"]), 1, budget_bytes=2**30)


def test_copies_per_pass_follow_the_budget():
    cfg = tiny_model().cfg
    assert copies_per_pass(1, 12, cfg) == 1  # never fewer than one copy, however small the budget
    one = copies_per_pass(2**20, 12, cfg)
    assert 1024 * one <= copies_per_pass(2**30, 12, cfg) < 1024 * (one + 1)  # whole copies, linear in the budget
    assert copies_per_pass(2**30, 48, cfg) < copies_per_pass(2**30, 12, cfg)  # fewer copies of a longer prompt


def test_the_budget_changes_the_batching_not_the_numbers(planted):
    """One resampled copy per pass or all of them in one: the same values up to float32 reruns in another batch
    shape (ATOL)."""
    model, truth = planted
    bos = model.tokenizer.bos_token_id
    settings = Fig5.model_validate({**repo_params()["fig5"], "n_resample": 3, "seed": 0})
    stats = Stats.model_validate(repo_params()["stats"])
    spec = PromptSpec("p1", "class MyClass:\n\tdef", (" get", " __"), Component(3, 5))
    rows = _rows(3, 16, len(model.tokenizer), bos, 2)
    n_tokens = tokenize_prompt(model, spec.text, bos).shape[1]
    assert copies_per_pass(1, n_tokens, model.cfg) == 1 and copies_per_pass(2**30, n_tokens, model.cfg) >= 3
    one = analyse_prompt(model, spec, Component.parse(truth.writer), rows, settings, stats, bos, budget_bytes=1)
    all_ = analyse_prompt(model, spec, Component.parse(truth.writer), rows, settings, stats, bos, budget_bytes=2**30)
    assert one["heads"].keys() == all_["heads"].keys()
    for name in one["heads"]:
        np.testing.assert_allclose(one["heads"][name]["_values"], all_["heads"][name]["_values"], atol=ATOL, rtol=0)


@pytest.mark.parametrize("direction", ["top2", "pair"])
def test_an_unusable_pair_is_an_error_whatever_the_direction(planted, direction):
    """A side the tokenizer splits is refused under `top2` too (it used to pass with a note): the user typed the
    pair for a reason, and top2 reports its logit difference."""
    pair = (" get", " MyClass.method")
    model, truth = planted
    bos = model.tokenizer.bos_token_id
    settings = Fig5.model_validate({**repo_params()["fig5"], "direction": direction, "n_resample": 4, "seed": 0})
    spec = PromptSpec("p3", "class MyClass:\n\tdef", pair, Component(3, 5))
    with pytest.raises(ParamError, match=r"^fig5\.prompts\.p3\.pair = \[' get', ' MyClass\.method'\] is not "
                                         r"allowed: each side must be one token"):
        analyse_prompt(model, spec, Component.parse(truth.writer), _rows(4, 16, len(model.tokenizer), bos, 2),
                       settings, Stats.model_validate(repo_params()["stats"]), bos, budget_bytes=2**30)


def test_a_prompt_longer_than_the_rows_names_its_parameter(planted):
    model, truth = planted
    settings = Fig5.model_validate(repo_params()["fig5"])
    spec = PromptSpec("p2", "I went to university at Michigan", (" State", " University"), Component(2, 1))
    n_tokens = tokenize_prompt(model, spec.text, 1).shape[1]
    with pytest.raises(ParamError, match=rf"^fig5\.prompts\.p2\.text is {n_tokens} tokens \(BOS included\) but the "
                                         r"prompt rows are only 4 \(prompts\.seq_len of the model\)"):
        analyse_prompt(model, spec, Component.parse(truth.writer), _rows(8, 4, len(model.tokenizer), 1, 0), settings,
                       Stats.model_validate(repo_params()["stats"]), 1, budget_bytes=2**30)
