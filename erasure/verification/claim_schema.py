"""The schema of paper/claims.yaml: pydantic models with the strict field types of erasure/params/fields.py, every
mapping closed (an unknown key is named), and the rules between keys as model validators.

A bad entry is one line naming the file, the claim (by its id) and the key, via `describe` with the registry's own
wording: `paper/claims.yaml: claim 'a': tolerance.abs = 0 must be a positive number`. The rules a value alone cannot
show (a numeric claim needs `rounding`; a tolerance is `interval` or abs / rel, not both; ids are unique; a check is
one of `checks.CHECKS` with its arguments) are `rule`s of the entry that holds the keys. Cross-references of
`figure_gaps` (a claim id, a number of `paper.authors_code`) are checked by erasure.verification.gaps.
"""
from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import PlainValidator, ValidationError, create_model, field_validator, model_validator

from erasure.errors import ClaimError
from erasure.formatting import as_number
from erasure.params.fields import MAX_COUNT, Bool, Choice, Float, Int, Section, Text, describe, location, rule
from erasure.verification.checks import CHECKS, KEY_ARGS
from erasure.verification.metrics import split_key

SOURCES = ("paper", "blog", "artifact")  # artifact: a check this reproduction adds (not a claim of the authors)


def _metric_key(value: Any) -> str:
    try:
        split_key(value)
    except ClaimError:
        raise ValueError("must be `file:dotted.key`") from None
    return value


def _positive(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError("must be a positive number")
    return float(value)


def _rounding(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise rule(f" must be a number >= 0, got {value!r}")
    return float(value)


def _metric(value: Any) -> Any:
    keys = list(value.values()) if isinstance(value, dict) else [] if value is None else [value]
    try:
        for key in keys:
            split_key(key)
    except ClaimError:
        raise ValueError("must be `file:dotted.key`, a mapping part -> `file:dotted.key`, or null") from None
    return value


MetricKey = Annotated[str, PlainValidator(_metric_key)]  # `file:dotted.key`, placeholders allowed
Metric = Annotated[Any, PlainValidator(_metric)]  # a metric key, a mapping part -> key, or null
Positive = Annotated[float, PlainValidator(_positive)]  # a tolerance's size
Number = Float(-math.inf, math.inf, open_lo=True, open_hi=True)  # any finite number
Rounding = Annotated[float, PlainValidator(_rounding)]  # half a unit of the paper's last printed digit (0: exact)


TRUTH_REF_KEYS = ("truth", "key", "scale")  # {truth: FIELD, key: K, scale: s}: a value of the planted truth


def is_number(x: Any) -> bool:
    """An int or float, not a bool (erasure.formatting.as_number's rule)."""
    return as_number(x) is not None


def is_quantitative(value: Any) -> bool:
    """A number, a mapping part -> number, or a value of the planted truth ({truth: FIELD, ...})."""
    if is_number(value):
        return True
    if isinstance(value, dict):
        return "truth" in value or (bool(value) and all(is_number(v) for v in value.values()))
    return False


class Closed(Section):
    """A mapping of claims.yaml: its known keys only; a key without a default must be there."""

    @model_validator(mode="before")
    @classmethod
    def _required(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, spec in cls.model_fields.items():
                if spec.is_required() and key not in data:
                    raise rule(f" lacks the field `{key}`")
        return data


class Tolerance(Closed):
    """{interval: true}, or {abs: x} / {rel: x}; a planted check may name the truth's own tolerance."""

    abs: Positive = None
    rel: Positive = None
    truth: Text = None
    interval: Bool = None


def tolerance_rule(tol: Any, kind: str) -> str | None:
    """What is wrong with a tolerance for an entry of `kind` (`claim`, `planted`, or `check`: a `within`'s
    arguments), or None. A claim is judged by its interval alone, or by a size when it has none."""
    if tol.interval is False:
        return f" interval must be true (or absent), got {tol.interval!r}"
    sizes = [k for k in ("abs", "rel") if getattr(tol, k) is not None]
    if len(sizes) > 1 or (kind == "planted" and not sizes) or not (sizes or tol.interval):
        return " must have exactly one of abs / rel" + (", or interval: true" if kind != "planted" else "")
    if kind == "claim" and sizes and tol.interval:
        return (" must be interval or abs / rel, not both (a claim with a sampling interval is judged by it "
                "alone)")
    if kind == "claim" and tol.truth is not None:
        return " truth applies to planted checks only"
    return None


ARG_TYPES: dict[str, Any] = {
    **{name: MetricKey for name in KEY_ARGS},
    "value": Any,  # a literal (number, list, string, bool) or {truth: FIELD, key: K, scale: s}
    "abs": Positive, "rel": Positive, "truth": Text, "interval": Bool, "rounding": Rounding,
    "margin": Number, "prefix": Text, "field": Text,
}


class CheckArgs(Closed):
    """The arguments of one check kind (required and optional, as `checks.CHECKS` lists them)."""

    @model_validator(mode="after")
    def _rules(self) -> CheckArgs:
        kind = type(self).__name__
        if kind in ("less_than", "greater_than") and (self.value is None) == (self.than is None):
            raise rule(" needs exactly one of value / than")
        if kind == "within":
            problem = tolerance_rule(self, "check")
            if problem:
                raise rule(problem)
        return self


CHECK_ARGS = {
    kind: create_model(kind, __base__=CheckArgs, **{name: (ARG_TYPES[name], ...) for name in required},
                       **{name: (ARG_TYPES[name], None) for name in optional})
    for kind, (_, required, optional) in CHECKS.items()
}


class OneCheck(Closed):
    """One `kind: {args}` mapping; its fields, one per kind, are added below (`Check`)."""

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, data: Any) -> Any:
        if not isinstance(data, dict) or len(data) != 1:
            raise rule(f" must be one `kind: {{args}}` mapping, got {data!r}")
        (kind,) = data
        if kind not in CHECKS:
            raise rule(f": unknown check kind {kind!r}; allowed: {', '.join(CHECKS)}")
        return data


Check = create_model("Check", __base__=OneCheck, **{kind: (args, None) for kind, args in CHECK_ARGS.items()})


class Entry(Closed):
    """The rules a claim and a planted check share (each declares its fields, in the order a missing one is
    named): the metric read, the tolerance, the rounding and the checks."""

    @field_validator("check", mode="before", check_fields=False)
    @classmethod
    def _one_or_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    def value_rule(self, value: Any, value_field: str, kind: str) -> None:
        """A numeric value reads one metric key per part and has a tolerance (and, a claim, a rounding); any
        other value is decided by its checks."""
        if not is_quantitative(value):
            if not self.check:
                raise rule(f": a claim without a numeric {value_field} needs a `check`")
            return
        stray = set(value) - set(TRUTH_REF_KEYS) if isinstance(value, dict) and "truth" in value else set()
        if stray:
            raise rule(f": {value_field} names the planted truth and allows only the keys "
                       f"{', '.join(TRUTH_REF_KEYS)}; got {', '.join(sorted(stray))}")
        if isinstance(value, dict) and "truth" not in value:
            if not isinstance(self.metric, dict) or set(self.metric) != set(value):
                raise rule(f": a mapping {value_field} needs `metric` with the same parts")
        elif not isinstance(self.metric, str):
            raise rule(f": a numeric {value_field} needs one `metric` key `file:dotted.key`")
        if self.tolerance is None:
            raise rule(f": a numeric {value_field} needs a `tolerance`")
        problem = tolerance_rule(self.tolerance, kind)
        if problem:
            raise rule(f": tolerance{problem}")
        if kind == "claim" and self.rounding is None:
            raise rule(": a numeric claim needs `rounding` (half a unit of the paper's last printed digit)")


class Claim(Entry):
    """A claim of the paper or the blog (or a check this reproduction adds) and how it is reproduced."""

    id: Text
    claim: Text
    section: Text
    figure: Text | None  # null: a claim of the text, shown in no figure
    source: Choice(*SOURCES)
    model: Text
    paper_value: Any
    metric: Metric
    tolerance: Tolerance | None
    tolerance_reason: Text
    rounding: Rounding = None
    check: list[Check] | None = None

    @model_validator(mode="after")
    def _value(self) -> Claim:
        self.value_rule(self.paper_value, "paper_value", "claim")
        return self


class ForEach(Closed):
    """Run a planted check once per item of a truth field, bound to `var`."""

    var: Text
    truth: Text


class PlantedCheck(Entry):
    """A check against the planted model's truth (exact unless a rounding is stated)."""

    id: Text
    what: Text
    tolerance_reason: Text
    metric: Metric = None
    expected: Any = None
    tolerance: Tolerance | None = None
    rounding: Rounding = None
    check: list[Check] | None = None
    for_each: ForEach = None

    @model_validator(mode="after")
    def _value(self) -> PlantedCheck:
        self.value_rule(self.expected, "expected", "planted")
        return self


class Paper(Closed):
    """The paper reproduced; `n_prompts` and `authors_code` serve `figure_gaps`."""

    title: Text = None
    authors: list[Text] = None
    arxiv: Text = None
    venue: Text = None
    model: Text = None
    writer: Text = None
    erasers: list[Text] = None
    n_prompts: Int(1, MAX_COUNT) = None
    seq_len: Int(1, MAX_COUNT) = None
    authors_code: dict[str, dict[str, Any]] = None


class Registry(Closed):
    """paper/claims.yaml."""

    paper: Paper = None
    figure_gaps: list = None  # entries checked by erasure.verification.gaps (they name claims)
    claims: list[Claim]
    planted_checks: list[PlantedCheck] | None = None

    @field_validator("planted_checks", mode="before")
    @classmethod
    def _a_list(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, list):
            raise rule(" must be a list")
        return value

    @model_validator(mode="after")
    def _unique_ids(self) -> Registry:
        seen: set[str] = set()
        for entry in self.claims + (self.planted_checks or []):
            if entry.id in seen:
                raise rule(f" has the id {entry.id!r} twice")
            seen.add(entry.id)
        return self


def check_registry(raw: Any, where: str) -> None:
    """Validate claims.yaml as read; a fault is one ClaimError naming the file, the entry by its id and the key."""
    try:
        Registry.model_validate(raw)
    except ValidationError as err:
        raise ClaimError(describe(err, file=where, name=lambda loc: _name(raw, loc), joint=" ")) from None


def _name(raw: Any, loc: tuple) -> str:
    """('claims', 0, 'tolerance', 'abs') -> "claim 'writer_absent_before': tolerance.abs"; anything else as
    params name it."""
    kinds = {"claims": "claim", "planted_checks": "planted check"}
    if len(loc) >= 2 and loc[0] in kinds and isinstance(loc[1], int):
        entry = raw[loc[0]][loc[1]]
        entity = f"{kinds[loc[0]]} {(entry.get('id') if isinstance(entry, dict) else None)!r}"
        if loc[2:4] == ("check", 0) and isinstance(entry.get("check"), dict):
            loc = (*loc[:3], *loc[4:])  # one check, not a list: no index
        rest = location(loc[2:])
        return f"{entity}: {rest}" if rest else entity
    return location(loc) or "the registry"
