"""Strict field types for params.yaml (and the JSON files stages hand each other) and the one-line message of a
bad value.

Every leaf type checks the exact type (a bool is not an integer, "no" is not a bool, a string is not a number)
and its bounds, and says what is allowed; `Section` rejects unknown keys by name. `describe` turns pydantic's
first error into the one line a stage prints: `fig4.n_prompts = 0 is not allowed: must be an integer from 1 to
1000000`. `Record` types a file written by a stage (extra keys allowed: readers check only what they use);
`read_record` reads one or says which file, key and value are wrong and how to remake it.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, PlainValidator, Tag, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from erasure.errors import DataError, ParamError
from erasure.mechanism.names import Component

MAX_COUNT = 1_000_000  # upper bound of every count (prompts, draws, rows): far above any run this machine can do
MAX_SEED = 2**32 - 2  # numpy and torch accept it; the offline code rows use seed + 1


def Int(lo: int, hi: int) -> Any:
    """An integer (not a bool) from lo to hi."""
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"must be an integer from {lo} to {hi}")
        return value
    return Annotated[int, PlainValidator(check)]


def IntOrAll(lo: int, hi: int) -> Any:
    """An integer from lo to hi, or `all` (None: no limit)."""
    def check(value: Any) -> int | None:
        if value == "all":
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"must be an integer from {lo} to {hi}, or all")
        return value
    return Annotated[int | None, PlainValidator(check)]


def Float(lo: float, hi: float, open_lo: bool = False, open_hi: bool = False) -> Any:
    """A finite number from lo to hi (an integer is accepted and becomes a float); `open_*` exclude a bound."""
    span = f"from {lo:g} to {hi:g}"
    if open_lo or open_hi:
        span = f"in {'(' if open_lo else '['}{lo:g}, {hi:g}{')' if open_hi else ']'}"

    def check(value: Any) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or not (lo < value if open_lo else lo <= value) or not (value < hi if open_hi else value <= hi):
            raise ValueError(f"must be a number {span}")
        return float(value)
    return Annotated[float, PlainValidator(check)]


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


Bool = Annotated[bool, PlainValidator(_bool)]


def Choice(*choices: str) -> Any:
    """One of the given strings."""
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value
    return Annotated[str, PlainValidator(check)]


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    return value


Text = Annotated[str, PlainValidator(_text)]


def _revision(value: Any) -> str | None:
    if value is not None and not (isinstance(value, str) and value and value.strip() == value):
        raise ValueError("must be null (main), a branch, a tag or a commit sha")
    return value


def _sha256(value: Any) -> str | None:
    if value is not None and not (isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value)):
        raise ValueError("must be null or 64 lowercase hex digits")
    return value


def _digest(value: Any) -> str:
    if not (isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value)):
        raise ValueError("must be 64 lowercase hex digits")
    return value


Revision = Annotated[str | None, PlainValidator(_revision)]  # a Hub revision; None = the default branch
Sha256 = Annotated[str | None, PlainValidator(_sha256)]  # a pinned file hash; None = not pinned
Digest = Annotated[str, PlainValidator(_digest)]  # a sha256 a file records


def _component(value: Any) -> Component:
    try:
        return Component.parse(value)
    except ParamError:
        raise ValueError("must be a head LxHy or MLPx") from None


def _head(value: Any) -> Component:
    comp = _component(value)
    if not comp.is_head:
        raise ValueError("must be an attention head LxHy (MLPs have no Q/K/V)")
    return comp


HeadName = Annotated[Component, PlainValidator(_head)]


def _auto_or_list(value: Any) -> str:
    return "<list>" if isinstance(value, list) else "<auto>"


def _auto(value: Any) -> str:
    if value != "auto":
        raise ValueError("must be auto or a list of heads LxHy")
    return value


# `auto`, or one head per item (an error names the item: the tags drop out of the parameter's name)
AutoHeads = Annotated[
    Annotated[str, PlainValidator(_auto), Tag("<auto>")] | Annotated[list[HeadName], Tag("<list>")],
    Discriminator(_auto_or_list),
]


def _writer(value: Any) -> Component | str:
    return "auto" if value == "auto" else _component(value)


def _erasers(value: Any) -> list[Component] | str:
    if value == "auto":
        return "auto"
    if not isinstance(value, list):
        raise ValueError("must be a list of heads/MLPs ([] = none), or auto")
    try:
        erasers = [Component.parse(v) for v in value]
    except ParamError:
        raise ValueError("must be a list of heads LxHy / MLPx ([] = none), or auto") from None
    if len(set(erasers)) != len(erasers):
        raise ValueError("components must be distinct")
    return erasers


Writer = Annotated[Component | str, PlainValidator(_writer)]  # a component, or "auto" (discovery picks it)
Erasers = Annotated[list[Component] | str, PlainValidator(_erasers)]


def rule(suffix: str) -> PydanticCustomError:
    """A broken rule between the keys of a section; the message is the section's name + `suffix`."""
    return PydanticCustomError("rule", "{suffix}", {"suffix": suffix})


def require_mapping(cls: type[BaseModel], data: Any) -> None:
    """A params section or a record must be a mapping; the error names the keys it should hold."""
    if not isinstance(data, dict):
        raise PydanticCustomError("not_a_mapping", "mapping", {"keys": ", ".join(cls.model_fields)})


class Section(BaseModel):
    """A params.yaml mapping: exactly its known keys, every one stated (no value is hidden in code)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        require_mapping(cls, data)
        unknown = [key for key in data if key not in cls.model_fields]
        if unknown:
            raise PydanticCustomError("unknown_key", "unknown key",
                                      {"key": str(unknown[0]), "known": ", ".join(cls.model_fields)})
        return data


def location(loc: tuple) -> str:
    """('fig5', 'comparison_heads', 0) -> fig5.comparison_heads[0]; union tags like '<loader hub>' are dropped."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not str(part).startswith("<"):
            text += ("." if text else "") + str(part)
    return text


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def describe(err: ValidationError, file: str | None = None, name: Callable[[tuple], str] = location,
             joint: str = " is not allowed: ") -> str:
    """pydantic's first error as the one line a user reads: the param, the value found, what is allowed.

    With `file`, the error is about that file (a Record) and the line starts with its name. `name` turns an error's
    location into the words that name it (paper/claims.yaml names a claim by its id); `joint` stands between the
    value found and what is allowed (paper/claims.yaml's lines read `id = ['x'] must be a non-empty string`).
    """
    e = err.errors(include_url=False)[0]
    where, kind, ctx, value = name(e["loc"]), e["type"], e.get("ctx") or {}, e.get("input")
    cause = ctx.get("error")
    prefix = f"{file}: " if file else ""
    if isinstance(cause, (ParamError, DataError)):
        return prefix + str(cause)
    if kind == "missing":
        return f"{prefix}{where} is missing" + ("" if file else " from params.yaml")
    if kind == "unknown_key":
        key = name((*e["loc"], ctx["key"]))
        return f"{prefix}{key} is not allowed: unknown key; the known keys are {ctx['known']}"
    if kind == "not_a_mapping":
        if file and not where:
            return f"{file} holds {_short(value)}: must be a mapping of {ctx['keys']}"
        return f"{prefix}{where or 'params.yaml'} = {_short(value)}{joint}must be a mapping of {ctx['keys']}"
    if kind == "rule":
        return f"{prefix}{where}{ctx['suffix']}"
    if kind in ("too_short", "too_long"):
        n = ctx.get("min_length", ctx.get("max_length"))
        bound = "at least" if kind == "too_short" else "at most"
        entries = "entry" if n == 1 else "entries"
        return f"{prefix}{where} = {_short(value)}{joint}must have {bound} {n} {entries}"
    if kind == "dict_type":
        return f"{prefix}{where} = {_short(value)}{joint}must be a mapping"
    if kind == "list_type":
        return f"{prefix}{where} = {_short(value)}{joint}must be a list"
    message = str(cause) if cause is not None else e["msg"]
    return f"{prefix}{where} = {_short(value)}{joint}{message}"
