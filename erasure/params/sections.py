"""The stage sections of params.yaml (everything but `model` and `models`): one typed model per section."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from erasure.params.fields import (
    MAX_COUNT,
    MAX_SEED,
    Bool,
    Choice,
    Float,
    Int,
    IntOrAll,
    Section,
    Text,
    rule,
)

BANDS = ("25-75", "12.5-87.5")  # percentile bands the figures can draw (erasure.plotting.style)
Dpi = Int(50, 600)


class Compute(Section):
    """Where and in what precision the model runs, and the working memory batched passes may use."""

    device: Choice("auto", "cpu", "cuda")  # auto = CUDA when torch sees one, else the CPU
    dtype: Choice("float32", "float64", "bfloat16", "float16")  # of the weights and every activation
    memory_gb: Float(0.01, 4096.0)  # beyond the model and one batch: Fig 5's copies per pass, the V-comp subset


class Activations(Section):
    batch_size: Int(1, 1024)  # prompts per clean forward pass, shared by discovery and the tables
    n_dla_prompts: Int(1, MAX_COUNT)  # prompts whose vectors are kept for paper Fig 4


class Stats(Section):
    headline: Choice("all", "no_bos")  # all = every (prompt, position), BOS included (the authors)
    n_bootstrap: Int(20, MAX_COUNT)  # draws of the prompt bootstrap behind every interval (claims, discovery)
    bootstrap_seed: Int(0, MAX_SEED)
    level: Float(0.0, 1.0, open_lo=True, open_hi=True)  # coverage of the intervals (0.95)


class FigPlot(Section):
    """Figs 1 and 3: which percentile bands to draw, at what resolution."""

    bands: Annotated[list[Choice(*BANDS)], Field(min_length=1)]
    dpi: Dpi


class Fig2(FigPlot):
    layers: Choice("all", "after_writer")  # all (the authors' code) | after_writer (the paper's text)
    negative_median: Float(0.0, 1.0)  # a head of the erasers' layer is "negative" when its median PR < -this


class CodeVariant(Section):
    """The authors' repo version of Fig 4: next-token column, OV without attention."""

    n_prompts: Int(1, MAX_COUNT)
    start_pos: Int(0, 10_000_000)  # and at most seq_len - 2 (checked on the DLA cache)


class Fig4(Section):
    n_prompts: Int(1, MAX_COUNT)  # first prompts of the DLA cache
    positions: Choice("all", "no_bos", "no_bos_no_last")
    seed: Int(0, MAX_SEED)  # the figure's point subsample
    max_scatter_points: Int(100, 10_000_000)  # drawn in the figure only (every point enters the fit)
    aligned_top_k: Int(1, 10_000)  # rows of the aligned-tokens record
    code_variant: CodeVariant
    dpi: Dpi


class Fig5Prompt(Section):
    """An adversarial prompt and its (correct, incorrect) pair of next tokens."""

    text: Text
    pair: Annotated[list[Text], Field(min_length=2, max_length=2)]

    @model_validator(mode="after")
    def _two_tokens(self) -> Fig5Prompt:
        if self.pair[0] == self.pair[1]:
            raise rule(f".pair = {self.pair!r} is not allowed: must be two different tokens [correct, incorrect]")
        return self


class Fig5(Section):
    prompts: Annotated[dict[str, Fig5Prompt], Field(min_length=1)]
    direction: Choice("top2", "pair")  # top2: the model's top-2 logit difference (the authors' code); pair: the stated
    n_resample: Int(1, MAX_COUNT)  # unrelated prompt rows per head (all rows when the prompt set is smaller)
    seed: Int(0, MAX_SEED)  # which rows are drawn when there are more than n_resample
    dpi: Dpi


class Discovery(Section):
    """Discovery (erasure.analysis.discovery), in the activations stage: the rules' thresholds and the streaming
    histograms. Its forward passes are the activations stage's (`activations.batch_size` prompts at a time)."""

    n_prompts: IntOrAll(1, MAX_COUNT)  # None (all) = every prompt
    n_vcomp_prompts: Int(1, MAX_COUNT)
    include_bos: Bool
    top_writers: Int(1, 10_000)
    min_rel_norm: Float(0.0, 1e3)
    horizon_layers: IntOrAll(1, 10_000)  # None (all) = every later layer
    max_overshoot: Float(0.0, 1e6)
    require_consistent: Bool
    eraser_threshold: Float(0.0, 1.0, open_lo=True, open_hi=True)
    eraser_scope: Choice("layer", "all")
    hist_bins: Int(16, 1 << 16)
    hist_scale: Float(1e-6, 1.0)
    hist_max: Float(1.0, 1e12)
    atlas_rows: Int(1, 10_000)
    dpi: Dpi

    @model_validator(mode="after")
    def _histogram_axis(self) -> Discovery:
        if self.hist_max <= self.hist_scale:
            raise rule(".hist_scale/hist_max are not allowed: need hist_scale < hist_max")
        return self

    def rules(self, batch_size: int) -> dict:
        """The discovery params as discovery.json records them, with the batch size of the shared pass (the
        figure's dpi is not a rule)."""
        return {"batch_size": batch_size, **self.model_dump(exclude={"dpi"})}


class Gelu4lLike(Section):
    """What "gelu-4l-like erasure" means for a model's top writer (erasure.analysis.comparison.criteria)."""

    min_top_frequency: Float(0.0, 1.0)  # tops at least this share of the prompt resamples
    min_erasure: Float(0.0, 2.0)  # lower 95% bound of the erasure within the window
    min_head_share: Float(0.0, 1.0)  # heads' part of what heads and MLPs take away
    min_vcomp_share: Float(0.0, 1.0)  # lower 95% bound of the erasers' V-composition share


class Compare(Section):
    """Stage compare: the sweep's per-model discovery results side by side."""

    models: Annotated[list[Text], Field(min_length=1)]  # rows, in this order; entries of `models`
    control: Text  # the positive control: a planted model, checked against its planted truth
    top_writers: Int(1, 100)
    gelu4l_like: Gelu4lLike
    dpi: Dpi

    @model_validator(mode="after")
    def _control_among_models(self) -> Compare:
        if len(set(self.models)) != len(self.models):
            raise rule(".models is not allowed: a model is listed twice")
        if self.control not in self.models:
            raise rule(f".control = {self.control!r} is not allowed: must be one of compare.models")
        return self


class Audit(Section):
    """Stage dla_audit (erasure.analysis.audit): every component's DLA against its ablation's total effect."""

    ablation: Choice("zero", "mean", "resample")  # what a component's output becomes at every position of a prompt
    direction: Choice("next_token", "top2")  # the logit: the next token's (Rushing & Nanda) | the clean top-2 diff
    top_fraction: Float(0.0, 1.0, open_lo=True)  # tokens pooled: the top fraction by |ΔDE| (Rushing & Nanda: 2%)
    n_prompts: IntOrAll(1, MAX_COUNT)  # first prompts of data/prompts (all = every prompt)
    seed: Int(0, MAX_SEED)  # resample: which prompt gives each prompt its ablated output
    dpi: Dpi

    @model_validator(mode="after")
    def _donors(self) -> Audit:
        if self.ablation == "resample" and self.n_prompts == 1:
            raise rule(".n_prompts = 1 is not allowed with ablation resample: needs at least 2 prompts (each takes "
                       "its ablated output from another)")
        return self


class Regression(Section):
    abs: Float(0.0, 1.0)  # a claim metric "moved" when |new - old| > abs + rel*|old|
    rel: Float(0.0, 1.0)


class Outputs(Section):
    """How numbers are written: rounded once, at write time, so a rerun that differs in the last float digits
    leaves metrics/, plots/, dvc.lock and the paper unchanged."""

    significant_digits: Int(4, 17)  # 17 = every float64 digit (no rounding)


class Paper(Section):
    regression: Regression
