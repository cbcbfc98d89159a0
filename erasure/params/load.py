"""params.yaml, read and checked in one go: `load_params()` -> `Params`, or one line naming the bad key.

`Params` holds one typed section per top-level key (erasure.params.sections, erasure.params.model_entries);
every value is stated in params.yaml (no default is hidden in code, so `dvc params diff` sees every value).
Checks that span sections (a component or token id within the model, seq_len within n_ctx, one Fig 5 comparison
head per prompt) run here. Writer and erasers may be `auto`: params only say so; the analysis layer
(erasure.analysis.roles) turns `auto` into discovery's choice. Nothing here reads a pipeline output.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import PrivateAttr, ValidationError, model_validator

from erasure.errors import DataError, ParamError
from erasure.io import read_yaml
from erasure.mechanism.names import Component
from erasure.params.fields import Section, Text, describe
from erasure.params.model_entries import KNOWN_SHAPES, AnyModel, HubModel, Models, ModelShape, check_tags
from erasure.params.sections import (
    Activations,
    Audit,
    Compare,
    Compute,
    Discovery,
    Fig2,
    Fig4,
    Fig5,
    FigPlot,
    Outputs,
    Paper,
    Stats,
)
from erasure.paths import PARAMS_FILE

MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Params(Section):
    """The whole of params.yaml; `model` selects one entry of `models`."""

    model: Text
    models: Models
    compute: Compute
    activations: Activations
    stats: Stats
    fig1: FigPlot
    fig2: Fig2
    fig3: FigPlot
    fig4: Fig4
    fig5: Fig5
    discovery: Discovery
    compare: Compare
    audit: Audit
    outputs: Outputs
    paper: Paper
    _raw: dict = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _entry_kinds(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in data.get("models") or {} if isinstance(data.get("models"), dict) else {}:
                if not (isinstance(name, str) and MODEL_NAME.fullmatch(name)):
                    raise ParamError(f"models.{name} is not allowed: a model's name is letters, digits, '.', '_' "
                                     "and '-' (it names files, experiments and the paper's rows)")
            check_tags(data.get("models"))
        return data

    @model_validator(mode="after")
    def _within_the_models(self) -> Params:
        if self.model not in self.models:
            raise ParamError(f"model = {self.model!r} is not allowed: must be one of {', '.join(self.models)}")
        for name, entry in self.models.items():
            check_entry(name, entry, model_shape(name, entry))
        for i, name in enumerate(self.compare.models):
            if name not in self.models:
                raise ParamError(f"compare.models[{i}] = {name!r} is not allowed: "
                                 f"must be one of {', '.join(self.models)}")
        if self.models[self.compare.control].loader != "planted":
            raise ParamError(f"compare.control = {self.compare.control!r} is not allowed: must be a planted model "
                             "(its truth is the positive control)")
        for name, entry in self.models.items():
            check_comparison_heads(name, entry, model_shape(name, entry), len(self.fig5.prompts))
        return self

    @property
    def entry(self) -> AnyModel:
        """The selected model's entry."""
        return self.models[self.model]

    @property
    def shape(self) -> ModelShape:
        return model_shape(self.model, self.entry)

    @property
    def raw(self) -> dict:
        """params.yaml as read (for provenance: the paper and the report quote the file's own values)."""
        return self._raw


def model_shape(name: str, entry: AnyModel) -> ModelShape:
    """The shape of a known model, or the `shape` a Hub model's entry states (checked before loading)."""
    if name in KNOWN_SHAPES:
        return KNOWN_SHAPES[name]
    if not isinstance(entry, HubModel) or entry.shape is None:
        raise ParamError(f"models.{name}.shape = None is not allowed: must give "
                         f"{', '.join(ModelShape.model_fields)}")
    return entry.shape


def check_comparison_heads(name: str, entry: AnyModel, shape: ModelShape, n_prompts: int) -> None:
    """A named list of Fig 5 comparison heads: one per fig5 prompt, each a head of this model."""
    heads, param = entry.fig5_comparison_heads, f"models.{name}.fig5_comparison_heads"
    if heads == "auto":
        return
    if len(heads) != n_prompts:
        raise ParamError(f"{param} = {[h.name for h in heads]!r} is not allowed: must be auto or a list of "
                         f"{n_prompts} heads, one per fig5 prompt")
    for i, head in enumerate(heads):
        Component.parse(head.name, f"{param}[{i}]", shape)


def check_roles(writer: Component, erasers: list[Component], param: str, shape: ModelShape) -> None:
    """Erasers must exist in the model and sit in a layer after the writer's."""
    for comp in erasers:
        Component.parse(comp.name, param, shape)
        if comp.layer <= writer.layer:
            raise ParamError(
                f"{param} contains {comp} which is not allowed: erasers must sit in a layer after the "
                f"writer {writer} (layers {writer.layer + 1}..{shape.n_layers - 1})"
            )


def check_entry(name: str, entry: AnyModel, shape: ModelShape) -> None:
    """The entry's values that depend on the model's shape: prompt length, token ids, writer and erasers."""
    base = f"models.{name}"
    prompts = entry.prompts
    if prompts.seq_len > shape.n_ctx:
        raise ParamError(f"{base}.prompts.seq_len = {prompts.seq_len} is not allowed: must be an integer from 2 to "
                         f"{shape.n_ctx} (n_ctx of {name})")
    for key in ("bos_token_id", "separator_token_id"):
        value = getattr(entry, key)
        if value is not None and value >= shape.d_vocab:
            raise ParamError(f"{base}.{key} = {value} is not allowed: must be an integer from 0 to {shape.d_vocab - 1}")
    if entry.writer == "auto":
        if entry.erasers != "auto":
            raise ParamError(f"{base}.erasers must be auto when writer is auto")
        return
    writer = Component.parse(entry.writer.name, f"{base}.writer", shape)
    if writer.layer >= shape.n_layers - 1:
        raise ParamError(f"{base}.writer = {writer.name!r} is not allowed: it must write before the last layer")
    if entry.erasers != "auto":
        check_roles(writer, entry.erasers, f"{base}.erasers", shape)


def validate_params(raw: Any) -> Params:
    """Check a params mapping (every section, every model entry); a bad value raises a one-line ParamError."""
    if not isinstance(raw, dict):
        found = "nothing" if raw is None else f"a {type(raw).__name__}"
        raise DataError(f"params.yaml holds {found}: must be a mapping of {', '.join(Params.model_fields)}")
    try:
        params = Params.model_validate(raw)
    except ValidationError as err:
        raise ParamError(describe(err)) from None
    params._raw = raw
    return params


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml."""
    return validate_params(read_yaml(Path(path)))
