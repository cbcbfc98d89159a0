"""params.yaml, typed: every bad value ends in one line naming the key, the value and what is allowed.

Each case edits a copy of the repository's params.yaml (planted-4l selected) and checks the exact message.
"""
from __future__ import annotations

import pytest

from erasure.analysis.roles import resolve_roles
from erasure.errors import DataError, ParamError
from erasure.mechanism.names import Component
from erasure.params.load import load_params, validate_params
from helpers import repo_params


def _set(path: str, value):
    def edit(raw):
        node = raw
        *parents, last = path.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    return edit


def _pop(path: str):
    def edit(raw):
        node = raw
        *parents, last = path.split(".")
        for key in parents:
            node = node[key]
        del node[last]
    return edit


def _both(*edits):
    def edit(raw):
        for e in edits:
            e(raw)
    return edit


P = "models.planted-4l"
BAD = {  # case: (edit, the whole one-line message)
    # the model entries
    "unknown model": (_set("model", "gpt-5"), "model = 'gpt-5' is not allowed: must be one of gelu-4l, planted-4l, smollm2-135m, gemma3-270m, gpt2-small"),
    "wrong loader": (_set(f"{P}.loader", "hub"), f"{P}.loader = 'hub' is not allowed: must be one of planted"),
    "hub model without shape": (_both(_set("model", "gpt2-small"), _pop("models.gpt2-small.shape")), "models.gpt2-small.shape = None is not allowed: must give n_layers, n_heads, n_ctx, d_vocab"),
    "head beyond a hub model": (_both(_set("model", "gpt2-small"), _set("models.gpt2-small.writer", "L12H0"), _set("models.gpt2-small.erasers", ["L13H0"])), "models.gpt2-small.writer = 'L12H0' is not allowed: must be a head LxHy or MLPx with layer 0..11 and head 0..11"),
    "head beyond the model": (_set(f"{P}.writer", "L9H2"), f"{P}.writer = 'L9H2' is not allowed: must be a head LxHy or MLPx with layer 0..3 and head 0..7"),
    "writer in the last layer": (_set(f"{P}.writer", "L3H0"), f"{P}.writer = 'L3H0' is not allowed: it must write before the last layer"),
    "not a component": (_set(f"{P}.writer", "head2"), f"{P}.writer = 'head2' is not allowed: must be a head LxHy or MLPx"),
    "eraser set not a list": (_set(f"{P}.erasers", "L2H2"), f"{P}.erasers = 'L2H2' is not allowed: must be a list of heads/MLPs ([] = none), or auto"),
    "repeated eraser": (_set(f"{P}.erasers", ["L2H2", "L2H2"]), f"{P}.erasers = ['L2H2', 'L2H2'] is not allowed: components must be distinct"),
    "eraser before writer": (_set(f"{P}.erasers", ["L0H1"]), f"{P}.erasers contains L0H1 which is not allowed: erasers must sit in a layer after the writer L0H2 (layers 1..3)"),
    "named erasers of an auto writer": (_set("models.smollm2-135m.erasers", ["L2H2"]), "models.smollm2-135m.erasers must be auto when writer is auto"),
    "seq_len above n_ctx": (_set(f"{P}.prompts.seq_len", 2048), f"{P}.prompts.seq_len = 2048 is not allowed: must be an integer from 2 to 1024 (n_ctx of planted-4l)"),
    "zero prompts": (_both(_set(f"{P}.prompts.n_text", 0), _set(f"{P}.prompts.n_code", 0)), f"{P}.prompts.n_text + n_code = 0 is not allowed: must be at least 1 prompt"),
    "authors' data off gelu-4l": (_set(f"{P}.prompts.source", "authors"), f"{P}.prompts.source = 'authors' is not allowed: the authors' data is gelu-4l's; use offline"),
    "unknown prompt source": (_set(f"{P}.prompts.source", "web"), f"{P}.prompts.source = 'web' is not allowed: must be one of authors, offline"),
    "revision with spaces": (_set("models.gelu-4l.revision", " main"), "models.gelu-4l.revision = ' main' is not allowed: must be null (main), a branch, a tag or a commit sha"),
    "revision as a number": (_set("models.gelu-4l.prompts.text_revision", 3), "models.gelu-4l.prompts.text_revision = 3 is not allowed: must be null (main), a branch, a tag or a commit sha"),
    "short weights hash": (_set("models.gelu-4l.weights_sha256", "abc"), "models.gelu-4l.weights_sha256 = 'abc' is not allowed: must be null or 64 lowercase hex digits"),
    "shuffle buffer too large": (_set("models.gelu-4l.prompts.shuffle_buffer", 200_000), "models.gelu-4l.prompts.shuffle_buffer = 200000 is not allowed: must be an integer from 1 to 100000"),
    "fig5 direction": (_set("fig5.direction", "both"), "fig5.direction = 'both' is not allowed: must be one of top2, pair"),
    "token id beyond the vocabulary": (_set("models.smollm2-135m.bos_token_id", 49152), "models.smollm2-135m.bos_token_id = 49152 is not allowed: must be an integer from 0 to 49151"),
    # exact types: a string, a float or a bool is not an integer; "no" is not false
    "seed as a string": (_set(f"{P}.seed", "1"), f"{P}.seed = '1' is not allowed: must be an integer from 0 to 4294967294"),
    "seed of 2^70": (_set(f"{P}.seed", 2**70), f"{P}.seed = 1180591620717411303424 is not allowed: must be an integer from 0 to 4294967294"),
    "batch size true": (_set("activations.batch_size", True), "activations.batch_size = True is not allowed: must be an integer from 1 to 1024"),
    "batch size 2.5": (_set("activations.batch_size", 2.5), "activations.batch_size = 2.5 is not allowed: must be an integer from 1 to 1024"),
    "batch size 0": (_set("activations.batch_size", 0), "activations.batch_size = 0 is not allowed: must be an integer from 1 to 1024"),
    "the removed paper.strict": (_set("paper.strict", False), "paper.strict is not allowed: unknown key; the known keys are regression"),
    "tolerance tiny": (_set("paper.regression.abs", "tiny"), "paper.regression.abs = 'tiny' is not allowed: must be a number from 0 to 1"),
    "tolerance nan": (_set("paper.regression.rel", float("nan")), "paper.regression.rel = nan is not allowed: must be a number from 0 to 1"),
    # unknown and missing keys
    "typo in a section": (_set("discovery.positons", 3), "discovery.positons is not allowed: unknown key; the known keys are n_prompts, n_vcomp_prompts, include_bos, top_writers, min_rel_norm, horizon_layers, max_overshoot, require_consistent, eraser_threshold, eraser_scope, hist_bins, hist_scale, hist_max, atlas_rows, dpi"),
    "the removed discovery.n_bootstrap": (_set("discovery.n_bootstrap", 200), "discovery.n_bootstrap is not allowed: unknown key; the known keys are n_prompts, n_vcomp_prompts, include_bos, top_writers, min_rel_norm, horizon_layers, max_overshoot, require_consistent, eraser_threshold, eraser_scope, hist_bins, hist_scale, hist_max, atlas_rows, dpi"),
    "the removed discovery.bootstrap_seed": (_set("discovery.bootstrap_seed", 0), "discovery.bootstrap_seed is not allowed: unknown key; the known keys are n_prompts, n_vcomp_prompts, include_bos, top_writers, min_rel_norm, horizon_layers, max_overshoot, require_consistent, eraser_threshold, eraser_scope, hist_bins, hist_scale, hist_max, atlas_rows, dpi"),
    "typo in a nested section": (_set(f"{P}.prompts.seqlen", 64), f"{P}.prompts.seqlen is not allowed: unknown key; the known keys are source, n_text, n_code, seq_len, seed"),
    "unknown top-level key": (_set("prompts", [1]), "prompts is not allowed: unknown key; the known keys are model, models, compute, activations, stats, fig1, fig2, fig3, fig4, fig5, discovery, compare, audit, outputs, paper"),
    "compare: a model without an entry": (_set("compare.models", ["planted-4l", "gpt-5"]), "compare.models[1] = 'gpt-5' is not allowed: must be one of gelu-4l, planted-4l, smollm2-135m, gemma3-270m, gpt2-small"),
    "compare: a control that is not planted": (_set("compare.control", "smollm2-135m"), "compare.control = 'smollm2-135m' is not allowed: must be a planted model (its truth is the positive control)"),
    "compare: a control outside the rows": (_set("compare.models", ["smollm2-135m"]), "compare.control = 'planted-4l' is not allowed: must be one of compare.models"),
    "compare: a threshold beyond 1": (_set("compare.gelu4l_like.min_vcomp_share", 1.5), "compare.gelu4l_like.min_vcomp_share = 1.5 is not allowed: must be a number from 0 to 1"),
    "too few significant digits": (_set("outputs.significant_digits", 3), "outputs.significant_digits = 3 is not allowed: must be an integer from 4 to 17"),
    "missing section": (_pop("stats"), "stats is missing from params.yaml"),
    "missing key": (_pop("discovery.eraser_threshold"), "discovery.eraser_threshold is missing from params.yaml"),
    "section not a mapping": (_set("fig4", [1, 2]), "fig4 = [1, 2] is not allowed: must be a mapping of n_prompts, positions, seed, max_scatter_points, aligned_top_k, code_variant, dpi"),
    # stage sections
    "bad band": (_set("fig1.bands", ["10-90"]), "fig1.bands[0] = '10-90' is not allowed: must be one of 25-75, 12.5-87.5"),
    "no band": (_set("fig1.bands", []), "fig1.bands = [] is not allowed: must have at least 1 entry"),
    "dpi 10": (_set("fig3.dpi", 10), "fig3.dpi = 10 is not allowed: must be an integer from 50 to 600"),
    "fig2 layers": (_set("fig2.layers", "some"), "fig2.layers = 'some' is not allowed: must be one of all, after_writer"),
    "headline": (_set("stats.headline", "bos"), "stats.headline = 'bos' is not allowed: must be one of all, no_bos"),
    "too few draws": (_set("stats.n_bootstrap", 5), "stats.n_bootstrap = 5 is not allowed: must be an integer from 20 to 1000000"),
    "level 1": (_set("stats.level", 1), "stats.level = 1 is not allowed: must be a number in (0, 1)"),
    "fig4 n_prompts": (_set("fig4.n_prompts", 0), "fig4.n_prompts = 0 is not allowed: must be an integer from 1 to 1000000"),
    "fig4 positions": (_set("fig4.positions", "middle"), "fig4.positions = 'middle' is not allowed: must be one of all, no_bos, no_bos_no_last"),
    "fig4 code variant": (_set("fig4.code_variant", {"n_prompts": 0, "start_pos": 32}), "fig4.code_variant.n_prompts = 0 is not allowed: must be an integer from 1 to 1000000"),
    "fig5 head beyond the model": (_set("models.gelu-4l.fig5_comparison_heads", ["L9H2", "L2H1", "L3H5", "L2H2"]), "models.gelu-4l.fig5_comparison_heads[0] = 'L9H2' is not allowed: must be a head LxHy or MLPx with layer 0..3 and head 0..7"),
    "fig5 gelu-4l's head on gemma": (_set("models.gemma3-270m.fig5_comparison_heads", ["L3H1", "L2H1", "L3H5", "L2H2"]), "models.gemma3-270m.fig5_comparison_heads[2] = 'L3H5' is not allowed: must be a head LxHy or MLPx with layer 0..17 and head 0..3"),
    "fig5 MLP as a head": (_set("models.planted-4l.fig5_comparison_heads", ["L3H1", "MLP2", "L3H5", "L2H2"]), "models.planted-4l.fig5_comparison_heads[1] = 'MLP2' is not allowed: must be an attention head LxHy (MLPs have no Q/K/V)"),
    "fig5 one head for four prompts": (_set("models.gelu-4l.fig5_comparison_heads", ["L3H1"]), "models.gelu-4l.fig5_comparison_heads = ['L3H1'] is not allowed: must be auto or a list of 4 heads, one per fig5 prompt"),
    "fig5 comparison heads neither auto nor a list": (_set("models.smollm2-135m.fig5_comparison_heads", "best"), "models.smollm2-135m.fig5_comparison_heads = 'best' is not allowed: must be auto or a list of heads LxHy"),
    "fig5 comparison heads are per model": (_set("fig5.comparison_heads", ["L3H1", "L2H1", "L3H5", "L2H2"]), "fig5.comparison_heads is not allowed: unknown key; the known keys are prompts, direction, n_resample, seed, dpi"),
    "fig5 one-sided pair": (_set("fig5.prompts.p2.pair", [" State"]), "fig5.prompts.p2.pair = [' State'] is not allowed: must have at least 2 entries"),
    "fig5 identical pair": (_set("fig5.prompts.p2.pair", [" State", " State"]), "fig5.prompts.p2.pair = [' State', ' State'] is not allowed: must be two different tokens [correct, incorrect]"),
    "fig5 n_resample": (_set("fig5.n_resample", 0), "fig5.n_resample = 0 is not allowed: must be an integer from 1 to 1000000"),
    "discovery threshold 1": (_set("discovery.eraser_threshold", 1.0), "discovery.eraser_threshold = 1.0 is not allowed: must be a number in (0, 1)"),
    "discovery threshold 0": (_set("discovery.eraser_threshold", 0.0), "discovery.eraser_threshold = 0.0 is not allowed: must be a number in (0, 1)"),
    "discovery n_prompts": (_set("discovery.n_prompts", 0), "discovery.n_prompts = 0 is not allowed: must be an integer from 1 to 1000000, or all"),
    "discovery include_bos": (_set("discovery.include_bos", "yes"), "discovery.include_bos = 'yes' is not allowed: must be true or false"),
    "discovery scope": (_set("discovery.eraser_scope", "model"), "discovery.eraser_scope = 'model' is not allowed: must be one of layer, all"),
    "discovery bins": (_set("discovery.hist_bins", 4), "discovery.hist_bins = 4 is not allowed: must be an integer from 16 to 65536"),
    "device": (_set("compute.device", "gpu"), "compute.device = 'gpu' is not allowed: must be one of auto, cpu, cuda"),
    "dtype": (_set("compute.dtype", "float8"), "compute.dtype = 'float8' is not allowed: must be one of float32, float64, bfloat16, float16"),
    "memory budget": (_set("compute.memory_gb", 0), "compute.memory_gb = 0 is not allowed: must be a number from 0.01 to 4096"),
    "fig5 batch size is gone": (_set("fig5.batch_size", 50), "fig5.batch_size is not allowed: unknown key; the known keys are prompts, direction, n_resample, seed, dpi"),
    "discovery histogram axis": (_both(_set("discovery.hist_scale", 1.0), _set("discovery.hist_max", 1.0)), "discovery.hist_scale/hist_max are not allowed: need hist_scale < hist_max"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_value_is_one_line_naming_it(case):
    edit, message = BAD[case]
    raw = repo_params()
    edit(raw)
    with pytest.raises(ParamError) as err:
        validate_params(raw)
    assert str(err.value) == message


def test_the_repository_params_are_valid_for_every_model():
    for model in ("gelu-4l", "planted-4l", "smollm2-135m", "gpt2-small"):
        params = validate_params(repo_params(model))
        assert params.model == model and params.entry is params.models[model]
    params = validate_params(repo_params("planted-4l"))
    assert params.entry.writer == Component(0, 2) and params.shape.n_ctx == 1024
    assert params.discovery.n_prompts is None and params.discovery.horizon_layers == 4  # `all` is None
    assert params.fig4.code_variant.start_pos == 32 and params.paper.regression.abs == 1e-4


def test_discovery_records_its_rules_not_its_figure_resolution():
    rules = validate_params(repo_params()).discovery.rules(batch_size=3)
    assert "dpi" not in rules and rules["hist_max"] == 10000.0 and rules["n_prompts"] is None
    assert rules["batch_size"] == 3  # the shared clean pass's


@pytest.mark.parametrize("text, message", [
    ("model: a\n  b: [1\n", "is not valid YAML at line 2, column 4: mapping values are not allowed"),
    ("model: a\nmodel: b\n", "is not valid YAML at line 2, column 1: key 'model' appears twice"),
    ("- 1\n- 2\n", "params.yaml holds a list: must be a mapping of model, models, compute, activations"),
])
def test_a_broken_file_is_one_line_with_its_position(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        load_params(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_file_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_bytes(b"model: \xff\n")
    with pytest.raises(DataError, match=r"params\.yaml is not UTF-8 text \(byte 7\): save it as UTF-8"):
        load_params(path)


def test_auto_roles_are_resolved_only_when_asked(tmp_path):
    """`auto` stays `auto` in Params; resolve_roles reads discovery's selection, checked like params."""
    params = validate_params(repo_params("smollm2-135m"))
    assert params.entry.writer == "auto" and params.entry.erasers == "auto"
    discovery = tmp_path / "discovery.json"
    with pytest.raises(DataError, match="run `dvc repro activations` first"):
        resolve_roles(params, discovery)
    discovery.write_text('{"selected": {"writer": "L3H4", "erasers": ["L5H1", "MLP6"]}}')
    assert resolve_roles(params, discovery) == (Component(3, 4), [Component(5, 1), Component(6)])
    discovery.write_text('{"selected": {"writer": "L3H4", "erasers": ["L2H1"]}}')
    with pytest.raises(ParamError, match="erasers must sit in a layer after the writer L3H4"):
        resolve_roles(params, discovery)
    discovery.write_text("{not json")
    with pytest.raises(DataError, match=r"discovery\.json is not valid JSON at line 1, column 2 .*: re-run `dvc repro activations`"):
        resolve_roles(params, discovery)
    discovery.write_text('{"selected": ["L3H4"]}')
    with pytest.raises(DataError, match=r"discovery\.json: selected = \['L3H4'\] is not allowed: .*: re-run `dvc repro activations`"):
        resolve_roles(params, discovery)
    named = validate_params(repo_params("planted-4l"))
    assert resolve_roles(named, tmp_path / "absent.json")[0] == Component(0, 2)  # named roles read no file
