"""The files one stage hands another, typed where they are read: what each reader uses, with its type, its keys,
its shapes and finiteness, so a damaged, hand-edited or old file stops the reading stage in one line naming the
file, the key and the remedy (never a KeyError, a format-code ValueError or a NaN drawn into a plot).

JSON records are pydantic models (`Record`: extra keys are kept, readers check only what they use) built from
pydantic's own strict types and constraints and the named bounds of erasure/params/fields.py; `read_record`,
`read_metrics` and `read_sweep_file` read them. Every hand-off is typed here: metrics/ (discovery, figures,
sweep), data/prompts/tokens.json (`PromptInfo`), data/activations/meta.json (`ActivationMeta`, `PointsMeta`),
the roles read from discovery (`DiscoveryRecord`) and paper/verification.json (`VerificationReport`). Arrays (the
atlas) are checked by `check_atlas_arrays`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AllowInfNan, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from erasure.errors import DataError
from erasure.io import read_json
from erasure.mechanism.names import Component
from erasure.params.fields import MAX_COUNT, Bool, Choice, Digest, Int, Text, describe, require_mapping, rule

Finite = Annotated[float, Field(strict=True), AllowInfNan(False)]  # an int is a float here (JSON writes 1.0 as 1.0)
Name = Annotated[str, StringConstraints(strict=True, min_length=1)]
Count = Annotated[int, Field(strict=True, ge=1)]

ACTIVATIONS_REMEDY = "re-run `dvc repro activations`"
SWEEP_REMEDY = "rerun `python -m scripts.collect_sweep`"


class Record(BaseModel):
    """A JSON file a stage wrote for later stages: the keys its readers use, typed; other keys are kept."""

    model_config = ConfigDict(frozen=True, extra="allow", arbitrary_types_allowed=True)

    @model_validator(mode="before")
    @classmethod
    def _a_mapping(cls, data: Any) -> Any:
        require_mapping(cls, data)
        return data


def check_record(data: Any, cls: type[Record], path: Path, remedy: str) -> Any:
    """`data` read from `path`, checked as `cls`; any fault is one DataError naming the file, the key and `remedy`."""
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise DataError(f"{describe(err, file=str(path))}: {remedy}") from None


def read_record(path: Path, cls: type[Record], remedy: str) -> Any:
    """Read and check a stage's JSON file (see check_record)."""
    return check_record(read_json(path, remedy), cls, path, remedy)



# ---- metrics/discovery.json, as the discovery_figs stage reads it ------------------------------------------------

class RankedWriter(Record):
    """One entry of discovery's ranking (plots/writers.csv); `erasure` is null when no checkpoint of the writer's
    window has a finite median (the writer is then excluded, with `no_finite_persistence`)."""

    name: Name
    erasure: Finite | None
    excluded_by: list[Name]


class CentredSubset(Record):
    persistence_centred: dict[Name, Finite | None]


class TopWriter(Record):
    """A top writer's persistence curve (the persistence figure)."""

    name: Name
    erasure: Finite
    window: Annotated[list[Name], Field(min_length=2, max_length=2)]
    persistence: dict[Name, Finite | None]
    subset: CentredSubset | None = None


class DiscoveryFigsRecord(Record):
    """metrics/discovery.json as the discovery_figs stage reads it."""

    model: Name
    n_prompts: Count
    seq_len: Annotated[int, Field(strict=True, ge=2)]
    writers: list[TopWriter]
    ranking: Annotated[list[RankedWriter], Field(min_length=1)]


# ---- metrics/fig5_adversarial.json, as the fig5_adversarial stage reads it ---------------------------------------

class Resampled(Record):
    median: Finite
    q25: Finite
    q75: Finite
    q12_5: Finite
    q87_5: Finite


class HeadDla(Record):
    clean: Finite
    resampled: Resampled


class PaperPair(Record):
    used_tokens: Annotated[list[str], Field(min_length=2, max_length=2)]


class Fig5Prompt(Record):
    """One adversarial prompt: its heads' clean and resampled DLA."""

    text: Annotated[str, Field(strict=True)]
    top2: Annotated[list[str], Field(min_length=2, max_length=2)]
    direction: Literal["top2", "pair"]
    logit_diff: Finite
    writer: Name
    comparison_head: Name
    auto_head: Name
    comparison_source: Annotated[str, Field(strict=True, min_length=1)]  # "params" or the auto rule's name
    writer_input: Annotated[str, Field(strict=True, min_length=1)]  # what of the writer was resampled
    n_resample: Count
    paper_pair: PaperPair
    heads: Annotated[dict[Name, HeadDla], Field(min_length=1)]

    @model_validator(mode="after")
    def _heads_named(self) -> Fig5Prompt:
        for role in ("writer", "comparison_head", "auto_head"):
            if getattr(self, role) not in self.heads:
                raise rule(f".{role} = {getattr(self, role)!r} is not allowed: it is not one of its heads "
                           f"{list(self.heads)}")
        return self


class Fig5Record(Record):
    """metrics/fig5_adversarial.json as the fig5_adversarial stage reads it."""

    model: Name
    prompts: Annotated[dict[Name, Fig5Prompt], Field(min_length=1)]


def read_metrics(path: Path, cls: type[Record], model: str) -> Record:
    """The activations stage's record at `path`, checked as `cls` and as written for `model` (a DataError
    otherwise)."""
    remedy = ACTIVATIONS_REMEDY if path.exists() else "run `dvc repro activations` first"
    record = read_record(path, cls, remedy)
    if record.model != model:
        raise DataError(f"{path} is of model {record.model!r}, not {model!r}: run `dvc repro activations`")
    return record


# ---- sweep/<model>.json, as the compare stage reads it -----------------------------------------------------------

class Split(Record):
    median: Finite | None = None
    median_low: Finite | None = None
    median_high: Finite | None = None


class NamedEraser(Record):
    name: Name


class EraserSum(Record):
    clean_median: Finite | None = None
    vcomp_share: Finite | None = None
    vcomp_share_low: Finite | None = None
    vcomp_share_high: Finite | None = None


class Subset(Record):
    erasure_centred: Finite | None = None


class ErasedBy(Record):
    """Who takes the writer away at its erasing checkpoint: heads and MLPs (other keys, e.g. the checkpoint, kept)."""

    heads: Split | None = None
    mlps: Split | None = None


class SweepWriter(Record):
    """A top writer as erasure.analysis.comparison.writer_row reads it (absent keys: older records, null)."""

    name: Name
    erasure: Finite | None = None
    erasure_low: Finite | None = None
    erasure_high: Finite | None = None
    top_frequency: Finite | None = None
    erasing_layer: Annotated[int, Field(strict=True, ge=0)] | None = None
    min_checkpoint: Name | None = None
    erased_by: ErasedBy | None = None
    erasers: list[NamedEraser] | None = None
    eraser_sum: EraserSum | None = None
    subset: Subset | None = None


class Selected(Record):
    writer: Name
    erasers: list[Name]


class BootstrapDraws(Record):
    """How a record's intervals were drawn (erasure.mechanism.bootstrap.bootstrap_record)."""

    level: Annotated[float, Field(strict=True, gt=0, lt=1)]
    n_draws: Count


class WriterFrequency(Record):
    name: Name | None  # null: the resamples in which no writer is relevant
    frequency: Finite


class SelectionFrequency(Record):
    writers: list[WriterFrequency]


class SweepDiscovery(Record):
    """An experiment's metrics/discovery.json, as comparison.model_entry reads it."""

    model: Name
    bootstrap: BootstrapDraws
    selection_frequency: SelectionFrequency
    architecture: dict[Name, str | int | bool | None] = {}
    n_prompts: Count | None = None
    seq_len: Count | None = None
    selected: Selected | None = None
    n_writers: Annotated[int, Field(strict=True, ge=0)] | None = None
    n_writers_relevant: Annotated[int, Field(strict=True, ge=0)] | None = None
    writers: list[SweepWriter] = []

    @model_validator(mode="before")
    @classmethod
    def _one_bootstrap(cls, data: object) -> object:
        if isinstance(data, dict) and "selection_frequency" not in data:  # keys before the one prompt bootstrap
            raise rule(".selection_frequency is missing: the record is from an older discovery (intervals as "
                       "*_ci95); rerun the model's experiment, then collect it")
        return data


class SweepRecord(Record):
    """sweep/<model>.json: one experiment's discovery results, collected by scripts/collect_sweep.py."""

    model: Name
    experiment: Name | None = None
    rev: Name | None = None
    discovery: SweepDiscovery


def read_sweep_file(path: Path) -> dict:
    """One sweep/<model>.json, checked (a DataError naming the file, the key and the remedy), as a dict."""
    return check_record(read_json(path, SWEEP_REMEDY), SweepRecord, path, SWEEP_REMEDY).model_dump()


# ---- data/discovery_atlas.npz ------------------------------------------------------------------------------------

ATLAS_KEYS = ("writers", "components", "matrix", "shape")


def check_atlas_arrays(arrays: dict[str, np.ndarray], path: Path) -> None:
    """The atlas's arrays: the four keys; string names; a float (writers, components) matrix whose finite values are
    the medians (NaN marks a component that does not read the writer: not every value may be NaN); the model's
    shape as two positive integers."""
    def bad(what: str) -> DataError:
        return DataError(f"{path}: {what}: {ACTIVATIONS_REMEDY}")

    missing = [k for k in ATLAS_KEYS if k not in arrays]
    if missing:
        raise bad(f"lacks {', '.join(missing)}")
    writers, components, matrix, shape = (arrays[k] for k in ATLAS_KEYS)
    for key, names in (("writers", writers), ("components", components)):
        if names.ndim != 1 or names.dtype.kind != "U" or names.size == 0:
            raise bad(f"{key} must be a non-empty list of names, not {names.dtype} {names.shape}")
    if shape.shape != (2,) or shape.dtype.kind not in "iu" or (shape < 1).any():
        raise bad(f"shape must be two positive integers (n_layers, n_heads), not {shape.tolist()}")
    if matrix.dtype.kind != "f" or matrix.shape != (writers.size, components.size):
        raise bad(f"matrix is {matrix.dtype} {matrix.shape}, expected floats "
                  f"(writers, components) = ({writers.size}, {components.size})")
    if np.isinf(matrix).any():
        raise bad("matrix holds inf values")
    if not np.isfinite(matrix).any():
        raise bad("matrix holds no finite value")


# ---- the hand-offs under data/ and paper/ (prompts, activation tables, Fig 4 points, roles, verification) ----
RUNS = ("clean", "patched")  # the activation tables' run axis


class ActivationMeta(Record):
    """data/activations/meta.json: what the tables hold, and for which model and roles."""

    model: Text
    writer: Text
    erasers: list[Text]  # [] = none: the patched run is the clean run, and what needs erasers does not apply
    roles_source: Text  # params | discovery | fallback (erasure.analysis.passes.Roles)
    roles_note: str | None  # why a fallback writer, or None
    patch_layers: list[Int(0, 10_000)]
    components: list[Text]
    checkpoints: list[Text]
    runs: list[Text]
    n_prompts: Int(1, MAX_COUNT)
    seq_len: Int(2, 10_000_000)

    @model_validator(mode="after")
    def _consistent(self) -> ActivationMeta:
        if tuple(self.runs) != RUNS:
            raise rule(f"runs = {self.runs!r} is not allowed: must be {list(RUNS)!r}")
        unknown = [c for c in [self.writer, *self.erasers] if c not in self.components]
        if unknown:
            raise rule(f"writer/erasers {[self.writer, *self.erasers]!r} are not allowed: must be a writer and "
                       "erasers among `components`")
        try:
            layers = sorted({Component.parse(e).layer for e in self.erasers})
        except ValueError:
            raise rule(f"erasers = {self.erasers!r} is not allowed: must be heads LxHy / MLPx") from None
        first = layers[0] if layers else None
        needed = set() if first is None else {f"resid_mid{first}",
                                              f"resid_post{first - 1}" if first > 0 else "resid_pre0"}
        if self.patch_layers != layers or not needed <= set(self.checkpoints):
            raise rule(f"patch_layers = {self.patch_layers!r} is not allowed: must be the erasers' layers {layers} "
                       f"with checkpoints {sorted(needed)}")
        return self


class PromptInfo(Record):
    """tokens.json: what the later stages read of it."""

    model: Text
    sha256: Digest
    n_text: Int(0, MAX_COUNT)
    n_code: Int(0, MAX_COUNT)
    is_code: list[Bool]

    @model_validator(mode="after")
    def _one_flag_per_row(self) -> PromptInfo:
        if len(self.is_code) != self.n_text + self.n_code or sum(self.is_code) != self.n_code:
            raise rule(f"is_code has {len(self.is_code)} flags ({sum(self.is_code)} true), not n_text + n_code = "
                       f"{self.n_text + self.n_code} ({self.n_code} true)")
        return self


class Selection(Record):
    writer: Text
    erasers: list[Text]


class DiscoveryRecord(Record):
    """What the stages with `auto` roles read of metrics/discovery.json."""

    selected: Selection


class CodeVariantMeta(Record):
    n_prompts: Int(0, MAX_COUNT)
    start_pos: Int(0, 10_000_000)
    has_heads: bool


class AlignedToken(Record):
    token: str
    id: Int(0, 10_000_000)
    score: float


class Fig4Meta(Record):
    """meta.json's `fig4`: how the points were made, and the aligned tokens."""

    n_prompts: Int(0, MAX_COUNT)
    code_variant: CodeVariantMeta
    aligned_top_k: Int(1, 10_000)
    aligned_tokens: list[AlignedToken]


class PointsMeta(ActivationMeta):
    """data/activations/meta.json as the fig4 stage reads it: the tables' record and its `fig4` part."""

    fig4: Fig4Meta


class ReportRow(Record):
    """One claim or planted check of paper/verification.json, as the paper's table reads it."""

    id: Text
    status: Choice("PASS", "FAIL", "NOT RUN")
    text: str
    paper_value: Any
    reproduced: Any
    tolerance: str
    reason: str


class VerificationReport(Record):
    claims: list[ReportRow]
    planted: list[ReportRow]
