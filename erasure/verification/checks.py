"""The fixed set of check kinds a claim may use (`within`, `less_than`, `set_equals`, ...), and their evaluation
context: metric lookups (recording which keys were read) and values from the planted truth.

`within` compares a reproduced number with a reference and says how close it is, in levels (strongest first):
`equal` (equal at the reference's printed precision: |ours - ref| <= rounding), `interval` (the reference lies in
our bootstrap interval widened by that rounding; the interval of `file:key` is `file:key_low` / `file:key_high`),
`tolerance` (|ours - ref| <= a stated tolerance, for numbers without a sampling interval); none of these: FAIL.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from erasure.mechanism.names import interval_keys
from erasure.verification.metrics import MISSING, Metrics, MissingMetric, lookup, split_key, truth_dict

LEVELS = ("equal", "interval", "tolerance")  # verdict levels of `within`, strongest first
LEVEL_TEXT = {"equal": "equal at printed precision", "interval": "inside our interval", "tolerance": "within tolerance",
              "rule": "rule holds", None: "outside"}


@dataclass
class CheckOutcome:
    ok: bool
    detail: str
    value: Any = None
    level: str | None = None  # `within` only: the verdict level reached (None: FAIL)
    interval: tuple[float, float] | None = None  # `within` with interval: our (low, high)


def _num(x: Any, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(float(x)):
        raise MissingMetric(f"{what} = {x!r} is not a finite number")
    return float(x)


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return json.dumps(x) if isinstance(x, (list, str)) else str(x)


def _tol_of(spec: dict, ref: float, ctx: Context) -> tuple[float, str]:
    """Absolute tolerance for reference value `ref` from {abs: x} / {rel: x} (or the truth's, when named)."""
    name = spec.get("truth")
    if name is not None and ctx.truth is not None:
        tols = truth_dict(ctx.truth).get("tolerances") or {}
        if name in tols:
            return float(tols[name]), f"±{float(tols[name]):.3g} (planted truth tolerance `{name}`)"
    if "abs" in spec:
        return float(spec["abs"]), f"±{float(spec['abs']):.3g}"
    rel = float(spec["rel"])
    return rel * abs(ref), f"±{100 * rel:.3g}% (±{rel * abs(ref):.3g})"


def _check_within(a: dict, ctx: Context) -> CheckOutcome:
    x = _num(ctx.get(a["metric"]), a["metric"])
    ref = _num(ctx.value(a["value"]), "value")
    rounding = float(a.get("rounding", 0.0))
    interval = None
    if a.get("interval"):
        interval = tuple(_num(ctx.get(key), key) for key in interval_keys(a["metric"]))
    tol = _tol_of(a, ref, ctx) if "abs" in a or "rel" in a else None
    parts = [f"ours {_fmt(x)} vs {_fmt(ref)}", f"printed ±{rounding:.3g}" if rounding else "exact reference"]
    if interval is not None:
        parts.append(f"interval [{_fmt(interval[0])}, {_fmt(interval[1])}]")
    if tol is not None:
        parts.append(f"tolerance {tol[1]}")
    if abs(x - ref) <= rounding:
        level = "equal"
    elif interval is not None and interval[0] - rounding <= ref <= interval[1] + rounding:
        level = "interval"
    elif tol is not None and abs(x - ref) <= tol[0]:
        level = "tolerance"
    else:
        level = None
    return CheckOutcome(level is not None, "; ".join(parts) + f": {LEVEL_TEXT[level]}", x, level, interval)


def _check_abs_below(a: dict, ctx: Context) -> CheckOutcome:
    x = _num(ctx.get(a["metric"]), a["metric"])
    bound = _num(ctx.value(a["value"]), "value")
    return CheckOutcome(abs(x) < bound, f"|{_fmt(x)}| < {_fmt(bound)}", x)


def _reference(a: dict, ctx: Context) -> tuple[float, str]:
    if "than" in a:
        ref = _num(ctx.get(a["than"]), a["than"])
        return ref, f"{_fmt(ref)} ({a['than'].split(':', 1)[1]})"
    ref = _num(ctx.value(a["value"]), "value")
    return ref, _fmt(ref)


def _check_less_than(a: dict, ctx: Context) -> CheckOutcome:
    x = _num(ctx.get(a["metric"]), a["metric"])
    ref, text = _reference(a, ctx)
    margin = float(a.get("margin", 0.0))
    suffix = f" - {margin:g}" if margin else ""
    return CheckOutcome(x < ref - margin, f"{_fmt(x)} < {text}{suffix}", x)


def _check_greater_than(a: dict, ctx: Context) -> CheckOutcome:
    x = _num(ctx.get(a["metric"]), a["metric"])
    ref, text = _reference(a, ctx)
    margin = float(a.get("margin", 0.0))
    suffix = f" + {margin:g}" if margin else ""
    return CheckOutcome(x > ref + margin, f"{_fmt(x)} > {text}{suffix}", x)


def _check_abs_diff_below(a: dict, ctx: Context) -> CheckOutcome:
    x = _num(ctx.get(a["a"]), a["a"])
    y = _num(ctx.get(a["b"]), a["b"])
    bound = _num(ctx.value(a["value"]), "value")
    return CheckOutcome(abs(x - y) < bound, f"|{_fmt(x)} - {_fmt(y)}| < {_fmt(bound)}", x - y)


def _rel_change(a: dict, ctx: Context) -> tuple[float, float, float]:
    x = _num(ctx.get(a["metric"]), a["metric"])
    ref = _num(ctx.get(a["reference"]), a["reference"])
    if ref == 0:
        raise MissingMetric(f"{a['reference']} is 0: relative change undefined")
    return x, ref, abs(x - ref) / abs(ref)


def _check_rel_change_below(a: dict, ctx: Context) -> CheckOutcome:
    x, ref, change = _rel_change(a, ctx)
    bound = _num(ctx.value(a["value"]), "value")
    return CheckOutcome(change < bound, f"|{_fmt(x)} - {_fmt(ref)}|/|{_fmt(ref)}| = {change:.3g} < {bound:g}",
                        change)


def _check_rel_change_above(a: dict, ctx: Context) -> CheckOutcome:
    x, ref, change = _rel_change(a, ctx)
    bound = _num(ctx.value(a["value"]), "value")
    return CheckOutcome(change > bound, f"|{_fmt(x)} - {_fmt(ref)}|/|{_fmt(ref)}| = {change:.3g} > {bound:g}",
                        change)


def _check_equals(a: dict, ctx: Context) -> CheckOutcome:
    x = ctx.get(a["metric"])
    ref = ctx.value(a["value"])
    return CheckOutcome(x == ref, f"{_fmt(x)} == {_fmt(ref)}", x)


def _as_items(x: Any, a: dict, what: str) -> list:
    if not isinstance(x, list):
        raise MissingMetric(f"{what} = {x!r} is not a list")
    if "field" in a:
        x = [item.get(a["field"]) if isinstance(item, dict) else MISSING for item in x]
        if MISSING in x:
            raise MissingMetric(f"{what}: items are not mappings with `{a['field']}`")
    if "prefix" in a:
        x = [item for item in x if str(item).startswith(a["prefix"])]
    return x


def _check_set_equals(a: dict, ctx: Context) -> CheckOutcome:
    x = _as_items(ctx.get(a["metric"]), a, a["metric"])
    ref = ctx.value(a["value"])
    ref = list(ref) if not isinstance(ref, dict) else sorted(ref)
    ok = set(x) == set(ref) and len(x) == len(set(x))
    note = f" (filtered to {a['prefix']}*)" if "prefix" in a else ""
    return CheckOutcome(ok, f"{_fmt(sorted(x))}{note} == {_fmt(sorted(ref))} as sets", sorted(x))


def _check_contains_all(a: dict, ctx: Context) -> CheckOutcome:
    x = _as_items(ctx.get(a["metric"]), a, a["metric"])
    ref = list(ctx.value(a["value"]))
    missing = [r for r in ref if r not in x]
    detail = f"all of {_fmt(ref)} in the list of {len(x)}" + (f"; missing {_fmt(missing)}" if missing else "")
    return CheckOutcome(not missing, detail, [r for r in ref if r in x])


def _check_keys_present(a: dict, ctx: Context) -> CheckOutcome:
    x = ctx.get(a["metric"])
    if not isinstance(x, dict):
        raise MissingMetric(f"{a['metric']} is not a mapping")
    missing = [k for k in a["value"] if k not in x]
    detail = f"keys {_fmt(list(a['value']))} present" + (f"; missing {_fmt(missing)}" if missing else "")
    return CheckOutcome(not missing, detail, [k for k in a["value"] if k in x])


CHECKS: dict[str, tuple[Callable[[dict, Context], CheckOutcome], tuple[str, ...], tuple[str, ...]]] = {
    # kind: (function, required args, optional args)
    "within": (_check_within, ("metric", "value"), ("abs", "rel", "truth", "interval", "rounding")),
    "abs_below": (_check_abs_below, ("metric", "value"), ()),
    "less_than": (_check_less_than, ("metric",), ("value", "than", "margin")),
    "greater_than": (_check_greater_than, ("metric",), ("value", "than", "margin")),
    "abs_diff_below": (_check_abs_diff_below, ("a", "b", "value"), ()),
    "rel_change_below": (_check_rel_change_below, ("metric", "reference", "value"), ()),
    "rel_change_above": (_check_rel_change_above, ("metric", "reference", "value"), ()),
    "equals": (_check_equals, ("metric", "value"), ()),
    "set_equals": (_check_set_equals, ("metric", "value"), ("prefix", "field")),
    "contains_all": (_check_contains_all, ("metric", "value"), ("field", "prefix")),
    "keys_present": (_check_keys_present, ("metric", "value"), ()),
}

KEY_ARGS = ("metric", "than", "a", "b", "reference")


@dataclass
class Context:
    metrics: Metrics
    truth: Any = None
    env: dict = field(default_factory=dict)
    used: list = field(default_factory=list)

    def get(self, key: str) -> Any:
        env = {**self.env, "__truth__": self.truth}
        file, dotted = split_key(key)
        try:
            self.used.append(f"{file}:{self.metrics.expand(dotted, file, env)}")
        except MissingMetric:
            self.used.append(key)
        return self.metrics.get(key, env)

    def peek(self, key: str) -> Any:
        return self.metrics.get(key, {**self.env, "__truth__": self.truth})

    def value(self, spec: Any) -> Any:
        """A literal, or {truth: FIELD, key: K, scale: s} read from the planted truth."""
        if isinstance(spec, dict) and "truth" in spec:
            if self.truth is None:
                raise MissingMetric("the planted truth is not available")
            value = lookup(truth_dict(self.truth), spec["truth"])
            if "key" in spec:
                key = self.metrics.expand(str(spec["key"]), None, self.env)
                value = value.get(key, MISSING) if isinstance(value, dict) else MISSING
            if value is MISSING or value is None:
                index = f"[{spec['key']}]" if "key" in spec else ""
                raise MissingMetric(f"planted truth has no {spec['truth']}{index}")
            if "scale" in spec:
                value = float(spec["scale"]) * float(value)
            return value
        return spec


def run_check(check: dict, ctx: Context) -> CheckOutcome:
    (kind, args), = check.items()
    return CHECKS[kind][0](args, ctx)
