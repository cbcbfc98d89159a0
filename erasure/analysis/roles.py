"""The writer and erasers a run's tables are about, and where they come from.

Named in the model's entry (`params`), or `auto`: discovery's selection (`discovery`). Discovery may select
nothing -- no relevant writer has an eraser, or no writer passes the relevance filters -- and the run still goes
on (`fallback`): the tables follow discovery's best relevant writer, or failing that its best-scored candidate,
with no erasers, and `note` says why; the figure stages then record which of their numbers do not apply.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from erasure.errors import DataError, ParamError
from erasure.mechanism.names import Component
from erasure.params.load import Params, check_roles
from erasure.paths import METRICS
from erasure.schemas import DiscoveryRecord, read_record


@dataclass(frozen=True)
class Roles:
    writer: Component
    erasers: list[Component] = field(default_factory=list)
    source: str = "params"  # params | discovery | fallback
    note: str | None = None


def named_roles(params: Params) -> Roles | None:
    """The entry's own writer and erasers, or None when they are `auto`."""
    entry = params.entry
    if entry.writer == "auto" or entry.erasers == "auto":
        return None
    return Roles(entry.writer, list(entry.erasers))


def discovered_roles(params: Params, record: dict, source: str) -> Roles:
    """`auto` roles from discovery's record (metrics/discovery.json at `source`): its selection, else a fallback
    writer with no erasers."""
    selected = record["selected"]
    if selected.get("writer") is not None:
        writer, erasers = selected_roles(params, selected, source)
        return Roles(writer, erasers, "discovery")
    if record["writers"]:
        best = record["writers"][0]["name"]
        note = (f"no relevant writer has an eraser (discovery.eraser_threshold); the figures follow the top "
                f"relevant writer {best}, with no erasers")
    elif record["ranking"]:
        top = record["ranking"][0]
        best = top["name"]
        note = (f"no writer passes discovery's relevance filters; the figures follow the best-scored candidate "
                f"{best} (excluded by {', '.join(top['excluded_by'])}), with no erasers")
    else:
        raise DataError(f"{source} ranks no writer: re-run `dvc repro activations`")
    return Roles(Component.parse(best, f"{source} writer", params.shape), [], "fallback", note)


def resolve_roles(params: Params, discovery: Path = METRICS["discovery"]) -> tuple[Component, list[Component]]:
    """The writer and erasers of the selected model; `auto` ones are discovery's selection (its metrics file)."""
    entry = params.entry
    if entry.writer != "auto" and entry.erasers != "auto":
        return entry.writer, list(entry.erasers)
    if not discovery.exists():
        raise DataError(f"writer/erasers = auto needs {discovery}: run `dvc repro activations` first")
    selected = read_record(discovery, DiscoveryRecord, "re-run `dvc repro activations`").selected
    return selected_roles(params, selected.model_dump(), str(discovery))


def selected_roles(params: Params, selected: dict, source: str) -> tuple[Component, list[Component]]:
    """The writer and erasers of the selected model, `auto` ones from discovery's `selected` record."""
    entry, base = params.entry, f"models.{params.model}"
    writer = entry.writer
    if writer == "auto":
        writer = Component.parse(selected.get("writer"), f"{base}.writer (auto, from {source})", params.shape)
    param = f"{base}.erasers (auto, from {source})"
    names = selected.get("erasers")
    if not isinstance(names, list) or not names:
        raise ParamError(f"{param} = {names!r} is not allowed: must be a non-empty list of heads/MLPs")
    erasers = [Component.parse(v, param, params.shape) for v in names]
    check_roles(writer, erasers, param, params.shape)
    return writer, erasers
