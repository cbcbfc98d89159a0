"""The claims registry (`paper/claims.yaml`) and its verification against the pipeline's metrics.

A claim names the metric that reproduces it as `file:dotted.key` (e.g.
`metrics/fig1_resid.json:checkpoints.resid_mid2.clean.all.median`). A quantitative claim has a `paper_value`
(a number, or a mapping part -> number with `metric` a mapping with the same parts) and a two-sided `tolerance`
(`{abs: x}` or `{rel: x}`); it passes when every part is within tolerance. Any claim may carry `check`: one named
rule or a list of them, all of which must hold. Rules are a small fixed set (`CHECKS`), no eval.

Keys may contain `{...}` placeholders, resolved in this order: a loop variable (`{h}`), a field of the planted
truth (`{truth.token_head}`), or a dotted key of the same metrics file (`{prompts.p1.writer}`).

Statuses: PASS, FAIL, NOT RUN. A claim is checked only when the run's model is the claim's model; otherwise it is
NOT RUN with the reason ("metrics are from planted-4l; this claim is about gelu-4l"), never PASS. A claim that
applies but cannot be evaluated (metric file or key missing, null value, metrics from another model) is FAIL with
the reason: a claim the run should reproduce and does not is not reproduced.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from erasure.config import DataError

CLAIMS_FILE = Path("paper/claims.yaml")
PASS, FAIL, NOT_RUN = "PASS", "FAIL", "NOT RUN"
SOURCES = ("paper", "blog", "artifact")  # artifact: a check this reproduction adds (not a claim of the authors)
REQUIRED_FIELDS = ("id", "claim", "section", "figure", "source", "model", "paper_value", "metric", "tolerance",
                   "tolerance_reason")
PLANTED_REQUIRED = ("id", "what", "tolerance_reason")
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


class ClaimError(DataError):
    """paper/claims.yaml is malformed (unknown check kind, missing field, bad key)."""


class MissingMetric(Exception):
    """A metric file or key a claim needs is absent (or null)."""


# --------------------------------------------------------------------------------------------------------
# loading and validation


def load_claims(path: str | Path = CLAIMS_FILE) -> dict:
    """Read and validate the registry: {"paper": {...}, "claims": [...], "planted_checks": [...]}."""
    path = Path(path)
    if not path.exists():
        raise ClaimError(f"{path} not found: run from the repository root")
    try:
        registry = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ClaimError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    validate_registry(registry, str(path))
    return registry


def validate_registry(registry: Any, where: str = "claims.yaml") -> None:
    if not isinstance(registry, dict) or not isinstance(registry.get("claims"), list):
        raise ClaimError(f"{where} must be a mapping with a `claims` list")
    seen: set[str] = set()
    for claim in registry["claims"]:
        cid = claim.get("id") if isinstance(claim, dict) else None
        for name in REQUIRED_FIELDS:
            if not isinstance(claim, dict) or name not in claim:
                raise ClaimError(f"{where}: claim {cid!r} lacks the field `{name}`")
        if cid in seen:
            raise ClaimError(f"{where}: claim id {cid!r} appears twice")
        seen.add(cid)
        if claim["source"] not in SOURCES:
            raise ClaimError(f"{where}: claim {cid}: source must be one of {SOURCES}")
        _validate_value_spec(claim, "paper_value", f"{where}: claim {cid}")
    for check in registry.get("planted_checks") or []:
        cid = check.get("id") if isinstance(check, dict) else None
        for name in PLANTED_REQUIRED:
            if not isinstance(check, dict) or name not in check:
                raise ClaimError(f"{where}: planted check {cid!r} lacks the field `{name}`")
        if cid in seen:
            raise ClaimError(f"{where}: id {cid!r} appears twice")
        seen.add(cid)
        _validate_value_spec(check, "expected", f"{where}: planted check {cid}")
        loop = check.get("for_each")
        if loop is not None and not (isinstance(loop, dict) and set(loop) == {"var", "truth"}):
            raise ClaimError(f"{where}: planted check {cid}: for_each must be {{var: NAME, truth: FIELD}}")


def _validate_value_spec(entry: dict, value_field: str, where: str) -> None:
    value = entry.get(value_field)
    metric = entry.get("metric")
    if _is_quantitative(value):
        if isinstance(value, dict) and "truth" not in value:
            if not isinstance(metric, dict) or set(metric) != set(value):
                raise ClaimError(f"{where}: a mapping {value_field} needs `metric` with the same parts")
            for key in metric.values():
                _split_key(key, where)
        else:
            _split_key(metric, where)
        tol = entry.get("tolerance")
        _validate_tolerance(tol, where)
    elif metric is not None:
        for key in (metric.values() if isinstance(metric, dict) else [metric]):
            _split_key(key, where)
    checks = _as_list(entry.get("check"))
    if not _is_quantitative(value) and not checks:
        raise ClaimError(f"{where}: a claim without a numeric {value_field} needs a `check`")
    for check in checks:
        validate_check(check, where)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_quantitative(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, dict):
        return "truth" in value or (bool(value) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()))
    return False


def _validate_tolerance(tol: Any, where: str) -> None:
    if not isinstance(tol, dict):
        raise ClaimError(f"{where}: tolerance must be {{abs: x}} or {{rel: x}} (optionally truth: NAME)")
    kinds = [k for k in ("abs", "rel") if k in tol]
    if len(kinds) != 1 or set(tol) - {"abs", "rel", "truth"}:
        raise ClaimError(f"{where}: tolerance must have exactly one of abs / rel (and optionally truth)")
    number = tol[kinds[0]]
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not number > 0:
        raise ClaimError(f"{where}: tolerance {kinds[0]} must be a positive number, got {number!r}")


def _split_key(key: Any, where: str = "") -> tuple[str, str]:
    if not isinstance(key, str) or ":" not in key:
        raise ClaimError(f"{where}: metric key {key!r} must be `file:dotted.key`")
    file, dotted = key.split(":", 1)
    if not file or not dotted:
        raise ClaimError(f"{where}: metric key {key!r} must be `file:dotted.key`")
    return file, dotted


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


# --------------------------------------------------------------------------------------------------------
# metric lookup


class Metrics:
    """Metric files under a root directory, loaded on demand; resolves `file:dotted.key` with placeholders.

    Given `files` (an in-memory set, for tests), nothing is read from disk: an absent file is absent.
    """

    def __init__(self, root: str | Path = ".", files: dict[str, Any] | None = None):
        self.root = Path(root)
        self._cache: dict[str, Any] = dict(files or {})
        self._from_disk = files is None

    def file(self, name: str) -> Any:
        if name not in self._cache and not self._from_disk:
            return None
        if name not in self._cache:
            path = self.root / name
            if not path.exists():
                self._cache[name] = None
            else:
                try:
                    self._cache[name] = json.loads(path.read_text())
                except json.JSONDecodeError as err:
                    raise DataError(f"{path} is not valid JSON: {err}") from None
        return self._cache[name]

    def model_of(self, name: str) -> str | None:
        data = self.file(name)
        return data.get("model") if isinstance(data, dict) else None

    def get(self, key: str, env: dict | None = None) -> Any:
        file, dotted = _split_key(key)
        data = self.file(file)
        if data is None:
            raise MissingMetric(f"{file} does not exist")
        dotted = self.expand(dotted, file, env)
        value = lookup(data, dotted)
        if value is _MISSING:
            raise MissingMetric(f"{file} has no key {dotted}")
        if value is None:
            raise MissingMetric(f"{file}:{dotted} is null")
        return value

    def expand(self, text: str, file: str | None, env: dict | None = None) -> str:
        env = env or {}

        def sub(match: re.Match) -> str:
            name = match.group(1)
            if name in env:
                return str(env[name])
            if name.startswith("truth."):
                truth = env.get("__truth__")
                if truth is None:
                    raise MissingMetric(f"{{{name}}} needs the planted truth")
                value = lookup(_truth_dict(truth), name[len("truth."):])
            else:
                data = self.file(file) if file else None
                if data is None:
                    raise MissingMetric(f"{file} does not exist")
                value = lookup(data, name)
            if value is _MISSING or value is None:
                raise MissingMetric(f"placeholder {{{name}}} does not resolve in {file}")
            return str(value)

        return _PLACEHOLDER.sub(sub, text)


_MISSING = object()


def lookup(data: Any, dotted: str) -> Any:
    """data["a"]["b"][0] for "a.b.0"; `_MISSING` when absent."""
    node = data
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _truth_dict(truth: Any) -> dict:
    if isinstance(truth, dict):
        return truth
    if is_dataclass(truth):
        return asdict(truth)
    return dict(vars(truth))


# --------------------------------------------------------------------------------------------------------
# check kinds (the fixed set)


@dataclass
class CheckOutcome:
    ok: bool
    detail: str
    value: Any = None


def _num(x: Any, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(float(x)):
        raise MissingMetric(f"{what} = {x!r} is not a finite number")
    return float(x)


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return json.dumps(x) if isinstance(x, (list, str)) else str(x)


def _tol_of(spec: dict, ref: float, ctx: "Context") -> tuple[float, str]:
    """Absolute tolerance for reference value `ref` from {abs: x} / {rel: x} (or the truth's, when named)."""
    name = spec.get("truth")
    if name is not None and ctx.truth is not None:
        tols = _truth_dict(ctx.truth).get("tolerances") or {}
        if name in tols:
            return float(tols[name]), f"±{float(tols[name]):.3g} (planted truth tolerance `{name}`)"
    if "abs" in spec:
        return float(spec["abs"]), f"±{float(spec['abs']):.3g}"
    rel = float(spec["rel"])
    return rel * abs(ref), f"±{100 * rel:.3g}% (±{rel * abs(ref):.3g})"


def _check_within(a: dict, ctx: "Context") -> CheckOutcome:
    x = _num(ctx.get(a["metric"]), a["metric"])
    ref = _num(ctx.value(a["value"]), "value")
    tol, text = _tol_of(a, ref, ctx)
    return CheckOutcome(abs(x - ref) <= tol, f"{_fmt(x)} vs {_fmt(ref)} {text}", x)


def _check_abs_below(a: dict, ctx: "Context") -> CheckOutcome:
    x = _num(ctx.get(a["metric"]), a["metric"])
    bound = _num(ctx.value(a["value"]), "value")
    return CheckOutcome(abs(x) < bound, f"|{_fmt(x)}| < {_fmt(bound)}", x)


def _reference(a: dict, ctx: "Context") -> tuple[float, str]:
    if "than" in a:
        ref = _num(ctx.get(a["than"]), a["than"])
        return ref, f"{_fmt(ref)} ({a['than'].split(':', 1)[1]})"
    ref = _num(ctx.value(a["value"]), "value")
    return ref, _fmt(ref)


def _check_less_than(a: dict, ctx: "Context") -> CheckOutcome:
    x = _num(ctx.get(a["metric"]), a["metric"])
    ref, text = _reference(a, ctx)
    margin = float(a.get("margin", 0.0))
    suffix = f" - {margin:g}" if margin else ""
    return CheckOutcome(x < ref - margin, f"{_fmt(x)} < {text}{suffix}", x)


def _check_greater_than(a: dict, ctx: "Context") -> CheckOutcome:
    x = _num(ctx.get(a["metric"]), a["metric"])
    ref, text = _reference(a, ctx)
    margin = float(a.get("margin", 0.0))
    suffix = f" + {margin:g}" if margin else ""
    return CheckOutcome(x > ref + margin, f"{_fmt(x)} > {text}{suffix}", x)


def _check_abs_diff_below(a: dict, ctx: "Context") -> CheckOutcome:
    x = _num(ctx.get(a["a"]), a["a"])
    y = _num(ctx.get(a["b"]), a["b"])
    bound = _num(ctx.value(a["value"]), "value")
    return CheckOutcome(abs(x - y) < bound, f"|{_fmt(x)} - {_fmt(y)}| < {_fmt(bound)}", x - y)


def _rel_change(a: dict, ctx: "Context") -> tuple[float, float, float]:
    x = _num(ctx.get(a["metric"]), a["metric"])
    ref = _num(ctx.get(a["reference"]), a["reference"])
    if ref == 0:
        raise MissingMetric(f"{a['reference']} is 0: relative change undefined")
    return x, ref, abs(x - ref) / abs(ref)


def _check_rel_change_below(a: dict, ctx: "Context") -> CheckOutcome:
    x, ref, change = _rel_change(a, ctx)
    bound = _num(ctx.value(a["value"]), "value")
    return CheckOutcome(change < bound, f"|{_fmt(x)} - {_fmt(ref)}|/|{_fmt(ref)}| = {change:.3g} < {bound:g}",
                        change)


def _check_rel_change_above(a: dict, ctx: "Context") -> CheckOutcome:
    x, ref, change = _rel_change(a, ctx)
    bound = _num(ctx.value(a["value"]), "value")
    return CheckOutcome(change > bound, f"|{_fmt(x)} - {_fmt(ref)}|/|{_fmt(ref)}| = {change:.3g} > {bound:g}",
                        change)


def _check_equals(a: dict, ctx: "Context") -> CheckOutcome:
    x = ctx.get(a["metric"])
    ref = ctx.value(a["value"])
    return CheckOutcome(x == ref, f"{_fmt(x)} == {_fmt(ref)}", x)


def _as_items(x: Any, a: dict, what: str) -> list:
    if not isinstance(x, list):
        raise MissingMetric(f"{what} = {x!r} is not a list")
    if "field" in a:
        x = [item.get(a["field"]) if isinstance(item, dict) else _MISSING for item in x]
        if _MISSING in x:
            raise MissingMetric(f"{what}: items are not mappings with `{a['field']}`")
    if "prefix" in a:
        x = [item for item in x if str(item).startswith(a["prefix"])]
    return x


def _check_set_equals(a: dict, ctx: "Context") -> CheckOutcome:
    x = _as_items(ctx.get(a["metric"]), a, a["metric"])
    ref = ctx.value(a["value"])
    ref = list(ref) if not isinstance(ref, dict) else sorted(ref)
    ok = set(x) == set(ref) and len(x) == len(set(x))
    note = f" (filtered to {a['prefix']}*)" if "prefix" in a else ""
    return CheckOutcome(ok, f"{_fmt(sorted(x))}{note} == {_fmt(sorted(ref))} as sets", sorted(x))


def _check_contains_all(a: dict, ctx: "Context") -> CheckOutcome:
    x = _as_items(ctx.get(a["metric"]), a, a["metric"])
    ref = list(ctx.value(a["value"]))
    missing = [r for r in ref if r not in x]
    detail = f"all of {_fmt(ref)} in the list of {len(x)}" + (f"; missing {_fmt(missing)}" if missing else "")
    return CheckOutcome(not missing, detail, [r for r in ref if r in x])


def _check_keys_present(a: dict, ctx: "Context") -> CheckOutcome:
    x = ctx.get(a["metric"])
    if not isinstance(x, dict):
        raise MissingMetric(f"{a['metric']} is not a mapping")
    missing = [k for k in a["value"] if k not in x]
    detail = f"keys {_fmt(list(a['value']))} present" + (f"; missing {_fmt(missing)}" if missing else "")
    return CheckOutcome(not missing, detail, sorted(x))


CHECKS: dict[str, tuple[Callable[[dict, "Context"], CheckOutcome], tuple[str, ...], tuple[str, ...]]] = {
    # kind: (function, required args, optional args)
    "within": (_check_within, ("metric", "value"), ("abs", "rel", "truth")),
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
_KEY_ARGS = ("metric", "than", "a", "b", "reference")


def validate_check(check: Any, where: str) -> None:
    if not isinstance(check, dict) or len(check) != 1:
        raise ClaimError(f"{where}: a check must be one `kind: {{args}}` mapping, got {check!r}")
    (kind, args), = check.items()
    if kind not in CHECKS:
        raise ClaimError(f"{where}: unknown check kind {kind!r}; allowed: {', '.join(CHECKS)}")
    _, required, optional = CHECKS[kind]
    if not isinstance(args, dict):
        raise ClaimError(f"{where}: check {kind} needs a mapping of arguments")
    missing = [r for r in required if r not in args]
    unknown = set(args) - set(required) - set(optional)
    if missing or unknown:
        raise ClaimError(f"{where}: check {kind}: missing {missing}, unknown {sorted(unknown)}")
    if kind in ("less_than", "greater_than") and ("value" in args) == ("than" in args):
        raise ClaimError(f"{where}: check {kind} needs exactly one of value / than")
    if kind == "within":
        _validate_tolerance({k: args[k] for k in ("abs", "rel", "truth") if k in args}, where)
    for name in _KEY_ARGS:
        if name in args:
            _split_key(args[name], where)


def check_keys(check: dict) -> list[str]:
    """The metric keys a check reads (placeholders unexpanded)."""
    (_, args), = check.items()
    return [args[name] for name in _KEY_ARGS if name in args]


# --------------------------------------------------------------------------------------------------------
# evaluation


@dataclass
class Context:
    metrics: Metrics
    truth: Any = None
    env: dict = field(default_factory=dict)
    used: list = field(default_factory=list)

    def get(self, key: str) -> Any:
        env = {**self.env, "__truth__": self.truth}
        file, dotted = _split_key(key)
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
            value = lookup(_truth_dict(self.truth), spec["truth"])
            if "key" in spec:
                key = self.metrics.expand(str(spec["key"]), None, self.env)
                value = value.get(key, _MISSING) if isinstance(value, dict) else _MISSING
            if value is _MISSING or value is None:
                raise MissingMetric(f"planted truth has no {spec['truth']}{'[' + str(spec.get('key')) + ']' if 'key' in spec else ''}")
            if "scale" in spec:
                value = float(spec["scale"]) * float(value)
            return value
        return spec


def run_check(check: dict, ctx: Context) -> CheckOutcome:
    (kind, args), = check.items()
    return CHECKS[kind][0](args, ctx)


@dataclass
class Result:
    id: str
    status: str
    text: str
    paper_value: Any = None
    reproduced: Any = None
    diff: Any = None
    tolerance: str = ""
    reason: str = ""
    details: list = field(default_factory=list)
    metrics: list = field(default_factory=list)  # metric keys actually read (expanded)
    files: list = field(default_factory=list)  # [{path, stage, lock_md5, md5, model}]

    def to_json(self) -> dict:
        return asdict(self)


def _tolerance_text(tol: dict | None, truth: Any = None) -> str:
    if not tol:
        return ""
    name = tol.get("truth")
    if name and truth is not None:
        tols = _truth_dict(truth).get("tolerances") or {}
        if name in tols:
            return f"±{float(tols[name]):g} (planted truth `{name}`)"
        return f"±{tol['abs']:g} (planted truth has no `{name}`)" if "abs" in tol else f"±{100 * tol['rel']:g}%"
    if "abs" in tol:
        text = f"±{tol['abs']:g}"
    else:
        text = f"±{100 * tol['rel']:g}%"
    return text + (f" (or planted truth `{tol['truth']}`)" if tol.get("truth") else "")


def _entry_checks(entry: dict, value_field: str) -> list[dict]:
    """The entry's value spec turned into `within` checks, followed by its own checks."""
    value = entry.get(value_field)
    checks: list[dict] = []
    if _is_quantitative(value):
        tol = entry["tolerance"]
        if isinstance(value, dict) and "truth" not in value:
            for part, ref in value.items():
                checks.append({"within": {"metric": entry["metric"][part], "value": ref, **tol}})
        else:
            checks.append({"within": {"metric": entry["metric"], "value": value, **tol}})
    return checks + _as_list(entry.get("check"))


def evaluate_entry(entry: dict, metrics: Metrics, value_field: str = "paper_value", truth: Any = None,
                   env: dict | None = None, entry_id: str | None = None, text: str | None = None) -> Result:
    """Evaluate one claim / planted check whose applicability was already decided."""
    ctx = Context(metrics=metrics, truth=truth, env=dict(env or {}))
    value = entry.get(value_field)
    result = Result(id=entry_id or entry["id"], status=PASS, text=text or entry.get("claim") or entry.get("what", ""),
                    tolerance=_tolerance_text(entry.get("tolerance"), truth) if _is_quantitative(value) else "rule")
    try:
        result.paper_value = ctx.value(value) if isinstance(value, dict) and "truth" in value else value
    except MissingMetric as err:
        return _failed(result, str(err), ctx)
    reproduced: dict[str, Any] = {}
    failures: list[str] = []
    outcomes: list[Any] = []
    for check in _entry_checks(entry, value_field):
        start = len(ctx.used)
        try:
            outcome = run_check(check, ctx)
        except MissingMetric as err:
            failures.append(f"cannot evaluate: {err}")
            result.details.append({"check": next(iter(check)), "ok": False, "detail": f"cannot evaluate: {err}",
                                   "keys": ctx.used[start:]})
            outcomes.append(None)
            continue
        result.details.append({"check": next(iter(check)), "ok": outcome.ok, "detail": outcome.detail,
                               "keys": ctx.used[start:]})
        outcomes.append(outcome.value if _is_number(outcome.value) else None)
        if not outcome.ok:
            failures.append(outcome.detail)
    # reproduced value(s) and difference for display
    if _is_quantitative(value) and isinstance(value, dict) and "truth" not in value:
        for part, key in entry["metric"].items():
            try:
                reproduced[part] = ctx.peek(key)
            except MissingMetric:
                reproduced[part] = None
        result.reproduced = reproduced
        result.diff = {p: reproduced[p] - value[p] for p in value if _is_number(reproduced.get(p))}
    elif entry.get("metric") is not None and not isinstance(entry["metric"], dict):
        try:
            result.reproduced = ctx.peek(entry["metric"])
        except MissingMetric:
            result.reproduced = None
        if _is_number(result.reproduced) and _is_number(result.paper_value):
            result.diff = result.reproduced - result.paper_value
    elif any(o is not None for o in outcomes):  # a rule-only claim: show what each rule measured
        result.reproduced = outcomes
    result.metrics = list(dict.fromkeys(ctx.used))
    if failures:
        result.status = FAIL
        result.reason = "; ".join(failures)
    return result


def _failed(result: Result, reason: str, ctx: Context) -> Result:
    result.status, result.reason = FAIL, reason
    result.metrics = list(dict.fromkeys(ctx.used))
    return result


def entry_files(entry: dict) -> list[str]:
    """Metric files an entry reads (from `metric` and every check)."""
    keys: list[str] = []
    metric = entry.get("metric")
    if isinstance(metric, dict):
        keys += list(metric.values())
    elif metric is not None:
        keys.append(metric)
    for check in _as_list(entry.get("check")):
        keys += check_keys(check)
    return list(dict.fromkeys(_split_key(k)[0] for k in keys))


def verify_claims(registry: dict, metrics: Metrics, run_model: str) -> list[Result]:
    """Every claim of the registry: PASS/FAIL when it is about `run_model`, NOT RUN otherwise."""
    results = []
    for claim in registry["claims"]:
        files = entry_files(claim)
        models = {f: metrics.model_of(f) for f in files}
        if claim["model"] != run_model:
            reason = f"metrics are from {run_model}; this claim is about {claim['model']}"
            stale = sorted({m for m in models.values() if m and m != run_model})
            if stale:
                reason += f" (and some metrics files are stale, from {', '.join(stale)})"
            results.append(Result(
                id=claim["id"], status=NOT_RUN, text=claim["claim"], paper_value=claim["paper_value"],
                tolerance=_tolerance_text(claim.get("tolerance")) if _is_quantitative(claim["paper_value"]) else "rule",
                reason=reason))
            continue
        stale = {f: m for f, m in models.items() if m is not None and m != run_model}
        if stale:
            result = Result(id=claim["id"], status=FAIL, text=claim["claim"], paper_value=claim["paper_value"],
                            reason="stale metrics: " + ", ".join(f"{f} is from {m}" for f, m in stale.items())
                            + f", but the run's model is {run_model} (run dvc repro)")
        else:
            result = evaluate_entry(claim, metrics)
        results.append(result)
    return results


def expand_planted(registry: dict, truth: Any) -> list[tuple[dict, dict, str, str]]:
    """(entry, env, id, text) for every planted check, loops over truth fields unrolled."""
    out = []
    for entry in registry.get("planted_checks") or []:
        loop = entry.get("for_each")
        if loop is None:
            out.append((entry, {}, entry["id"], entry["what"]))
            continue
        items = _truth_dict(truth).get(loop["truth"]) if truth is not None else None
        if items is None:
            out.append((entry, {}, entry["id"], entry["what"]))
            continue
        for item in (sorted(items) if isinstance(items, dict) else items):
            env = {loop["var"]: item}
            text = _PLACEHOLDER.sub(lambda m: str(env.get(m.group(1), m.group(0))), entry["what"])
            out.append((entry, env, f"{entry['id']}[{item}]", text))
    return out


def verify_planted(registry: dict, metrics: Metrics, truth: Any, run_model: str) -> list[Result]:
    """The planted-truth checks: run only when the run's model is planted-4l."""
    results = []
    for entry, env, rid, text in expand_planted(registry, truth):
        if run_model != "planted-4l":
            results.append(Result(id=rid, status=NOT_RUN, text=text,
                                  reason=f"planted-truth checks apply to planted-4l; the run's model is {run_model}"))
            continue
        if truth is None:
            results.append(Result(id=rid, status=FAIL, text=text, reason="erasure.planted.planted_truth() unavailable"))
            continue
        if entry.get("for_each") and not env:
            results.append(Result(id=rid, status=FAIL, text=text,
                                  reason=f"planted truth has no field {entry['for_each']['truth']!r} to loop over"))
            continue
        stale = {f: metrics.model_of(f) for f in entry_files(entry)}
        stale = {f: m for f, m in stale.items() if m is not None and m != run_model}
        if stale:
            results.append(Result(id=rid, status=FAIL, text=text, reason="stale metrics: " + ", ".join(
                f"{f} is from {m}" for f, m in stale.items())))
            continue
        results.append(evaluate_entry(entry, metrics, "expected", truth=truth, env=env, entry_id=rid, text=text))
    return results


# --------------------------------------------------------------------------------------------------------
# provenance: which stage wrote a metric file, and its dvc.lock md5


def file_md5(path: Path) -> str | None:
    if not path.is_file():
        return None
    return hashlib.md5(path.read_bytes()).hexdigest()


def resolve_templated(text: str, params: dict) -> str:
    """DVC's `${a.b}` interpolation from params.yaml (only what dvc.yaml of this repo uses)."""
    def sub(match: re.Match) -> str:
        value = lookup(params, match.group(1).strip())
        return match.group(0) if value is _MISSING else str(value)
    return re.sub(r"\$\{([^}]+)\}", sub, text)


def _entry_paths(entries: Any) -> list[str]:
    paths = []
    for item in entries or []:
        if isinstance(item, str):
            paths.append(item)
        elif isinstance(item, dict):
            paths += list(item)
    return paths


def stage_outputs(dvc_yaml: dict) -> dict[str, str]:
    """path -> stage name for every outs/metrics/plots entry of dvc.yaml."""
    owners: dict[str, str] = {}
    for name, stage in (dvc_yaml.get("stages") or {}).items():
        for section in ("outs", "metrics", "plots"):
            for path in _entry_paths(stage.get(section)):
                owners[path] = name
    return owners


def lock_md5s(dvc_lock: dict | None) -> dict[str, str]:
    md5s: dict[str, str] = {}
    for stage in ((dvc_lock or {}).get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if "md5" in out:
                md5s[out["path"]] = out["md5"]
    return md5s


def read_yaml(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise DataError(f"{path} is not valid YAML: {' '.join(str(err).split())[:200]}") from None


def provenance(root: Path, files: list[str], dvc_yaml: dict | None, dvc_lock: dict | None,
               metrics: Metrics) -> list[dict]:
    owners = stage_outputs(dvc_yaml or {})
    md5s = lock_md5s(dvc_lock)
    out = []
    for path in files:
        actual = file_md5(root / path)
        lock = md5s.get(path)
        out.append({"path": path, "stage": owners.get(path), "lock_md5": lock, "md5": actual,
                    "lock_matches": None if lock is None or actual is None else lock == actual,
                    "model": metrics.model_of(path)})
    return out


def attach_provenance(results: list[Result], root: Path, dvc_yaml: dict | None, dvc_lock: dict | None,
                      metrics: Metrics, registry_entries: dict[str, dict]) -> None:
    for result in results:
        entry = registry_entries.get(result.id.split("[", 1)[0])
        files = entry_files(entry) if entry else []
        result.files = provenance(root, files, dvc_yaml, dvc_lock, metrics)


def metric_keys_of(registry: dict, include_planted: bool = True) -> list[str]:
    """Every `file:key` a claim (or planted check) reads, placeholders unexpanded."""
    keys: list[str] = []
    entries = list(registry["claims"]) + (list(registry.get("planted_checks") or []) if include_planted else [])
    for entry in entries:
        metric = entry.get("metric")
        keys += list(metric.values()) if isinstance(metric, dict) else ([metric] if metric else [])
        for check in _as_list(entry.get("check")):
            keys += check_keys(check)
    return list(dict.fromkeys(keys))


# --------------------------------------------------------------------------------------------------------
# the verification report (paper/verification.json + paper/verification.md)

METRIC_FILES = ("metrics/fig1_resid.json", "metrics/fig2_components.json", "metrics/fig3_heads.json",
                "metrics/fig4_dla.json", "metrics/fig5_adversarial.json", "metrics/aligned_tokens.json",
                "metrics/discovery.json")


def load_truth() -> Any:
    """erasure.planted.planted_truth(), or None with the reason when it cannot be imported."""
    from erasure.planted import planted_truth  # noqa: PLC0415 (heavy; only for planted-4l runs)
    return planted_truth()


def run_verification(root: str | Path, params: dict, registry: dict,
                     truth_loader: Callable[[], Any] | None = load_truth) -> dict:
    """Check every claim (and, for planted-4l, the planted truth) against the metrics under `root`."""
    root = Path(root)
    metrics = Metrics(root)
    run_model = params.get("model")
    file_models = {f: metrics.model_of(f) for f in METRIC_FILES if metrics.file(f) is not None}
    truth, truth_error = None, None
    if run_model == "planted-4l" and registry.get("planted_checks") and truth_loader is not None:
        try:
            truth = truth_loader()
        except Exception as err:  # noqa: BLE001 (reported, and every planted check FAILs with it)
            truth_error = f"{type(err).__name__}: {err}"
    claims = verify_claims(registry, metrics, run_model)
    planted = verify_planted(registry, metrics, truth, run_model) if run_model == "planted-4l" else []
    if truth_error:
        for result in planted:
            result.reason = f"planted_truth() failed: {truth_error}"
    dvc_yaml, dvc_lock = read_yaml(root / "dvc.yaml"), read_yaml(root / "dvc.lock")
    entries = {e["id"]: e for e in registry["claims"]}
    entries.update({e["id"]: e for e in registry.get("planted_checks") or []})
    attach_provenance(claims + planted, root, dvc_yaml, dvc_lock, metrics, entries)
    paper_model = registry.get("paper", {}).get("model", "gelu-4l")
    if run_model == paper_model:
        note = f"The run's model is {run_model}, the paper's: every claim is checked against the paper's value."
    elif run_model == "planted-4l":
        note = (f"The run's model is planted-4l, a test instrument with erasure built in: no claim about "
                f"{paper_model} is checked (all NOT RUN); the planted-truth checks are.")
    else:
        note = (f"The run's model is {run_model}: nothing is checked against the paper, whose claims are about "
                f"{paper_model} (all NOT RUN).")
    stale = {f: m for f, m in file_models.items() if m != run_model}
    if stale:
        note += " Stale metrics from another model: " + ", ".join(f"{f} ({m})" for f, m in stale.items()) + "."
    inputs = metrics.file("metrics/inputs.json") or {}
    report = {
        "model": run_model,
        "paper_model": paper_model,
        "inputs": inputs.get("hub", {}),
        "metric_models": file_models,
        "note": note,
        "summary": {"claims": _count(claims), "planted": _count(planted)},
        "claims": [r.to_json() for r in claims],
        "planted": [r.to_json() for r in planted],
    }
    report["ok"] = report["summary"]["claims"]["fail"] == 0 and report["summary"]["planted"]["fail"] == 0
    return _json_safe(report)


def _json_safe(obj: Any) -> Any:
    """NaN / inf (which a broken metric can hold) as strings, so the report stays valid JSON for DVC."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def _count(results: list[Result]) -> dict:
    return {"pass": sum(r.status == PASS for r in results), "fail": sum(r.status == FAIL for r in results),
            "not_run": sum(r.status == NOT_RUN for r in results), "total": len(results)}


def exit_code(report: dict, strict: bool = True) -> int:
    """1 when a checked claim or planted check FAILed (and the run is strict), else 0."""
    return 1 if strict and not report["ok"] else 0


def display(value: Any, digits: int = 4) -> str:
    """A compact, table-friendly rendering of a paper or reproduced value."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {display(v, digits)}" for k, v in value.items())
    if isinstance(value, list):
        if value and all(isinstance(v, dict) and "token" in v for v in value):
            value = [v["token"] for v in value]
        return ", ".join(json.dumps(v) if isinstance(v, str) else display(v, digits) for v in value)
    return str(value)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_report_md(report: dict) -> str:
    """paper/verification.md: one row per claim, then every planted check, then the reasons in full."""
    s_c, s_p = report["summary"]["claims"], report["summary"]["planted"]
    lines = [
        "# Verification of the paper's claims",
        "",
        f"Model of this run: **{report['model']}** (the paper's: {report['paper_model']}). {report['note']}",
        "",
    ]
    if report.get("inputs"):
        lines += ["Inputs (Hugging Face Hub commits actually used):", ""]
        lines += [f"- {role}: `{src['repo']}` @ `{src['commit']}`"
                  + (f", `{src['weights_file']}` sha256 `{src['weights_sha256']}`" if "weights_sha256" in src else "")
                  for role, src in report["inputs"].items()]
        lines.append("")
    lines += [
        f"Claims: {s_c['pass']} PASS, {s_c['fail']} FAIL, {s_c['not_run']} NOT RUN of {s_c['total']}."
        + (f" Planted-truth checks: {s_p['pass']} PASS, {s_p['fail']} FAIL of {s_p['total']}." if s_p["total"] else ""),
        "",
    ]
    lines += _table(report["claims"], "paper")
    if report["planted"]:
        lines += ["", "## Planted-truth checks (planted-4l)", ""]
        lines += _table(report["planted"], "planted")
    notes = [r for r in report["claims"] + report["planted"] if r["status"] != PASS or r["details"]]
    if notes:
        lines += ["", "## Details", ""]
        for r in notes:
            lines.append(f"- **{r['id']}** ({r['status']}){': ' + r['reason'] if r['reason'] else ''}")
            for d in r["details"]:
                keys = ", ".join(f"`{k}`" for k in dict.fromkeys(d.get("keys") or []))
                lines.append(f"  - {'ok' if d['ok'] else 'NOT ok'} `{d['check']}`: {d['detail']}"
                             + (f" ({keys})" if keys else ""))
    return "\n".join(lines) + "\n"


def _table(results: list[dict], kind: str) -> list[str]:
    head = "paper" if kind == "paper" else "expected"
    lines = [f"| id | claim | {head} | reproduced | difference | tolerance | status | stage | md5 (dvc.lock) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        stages = ", ".join(dict.fromkeys(f["stage"] or "?" for f in r["files"])) or "—"
        md5s = ", ".join(_md5_cell(f) for f in r["files"]) or "—"
        status = r["status"] + (f" ({r['reason']})" if r["status"] == NOT_RUN and r["reason"] else "")
        lines.append("| " + " | ".join(_cell(c) for c in (
            r["id"], r["text"], display(r["paper_value"]), display(r["reproduced"]), display(r["diff"], 2),
            r["tolerance"] or "—", status, stages, md5s)) + " |")
    return lines


def _md5_cell(f: dict) -> str:
    if f["lock_md5"] is None:
        return "not in dvc.lock" if f["md5"] else "absent"
    return f["lock_md5"][:8] + ("" if f["lock_matches"] in (True, None) else " (file differs!)")


# --------------------------------------------------------------------------------------------------------
# regression: did a metric that a claim reads move since a reference run? (stages/regression.py)


def claim_leaves(registry: dict, metrics: Metrics, truth: Any = None) -> tuple[list[tuple[str, str]], list[str]]:
    """(file, dotted) of every leaf a claim or planted check reads, placeholders expanded; plus unexpandable keys.

    A key naming a mapping (e.g. a stats dict for keys_present) contributes every leaf under it; `for_each`
    loop variables are unrolled over the planted truth when it is given.
    """
    loops: list[dict] = [{}]
    if truth is not None:
        td = _truth_dict(truth)
        for entry in registry.get("planted_checks") or []:
            loop = entry.get("for_each")
            if loop and not any(loop["var"] in env for env in loops):
                items = td.get(loop["truth"]) or {}
                items = sorted(items) if isinstance(items, dict) else list(items)
                loops = [{**env, loop["var"]: item} for env in loops for item in items] or loops
    leaves: list[tuple[str, str]] = []
    skipped: list[str] = []
    for key in metric_keys_of(registry):
        file, dotted = _split_key(key)
        expanded = set()
        for env in loops:
            try:
                expanded.add(metrics.expand(dotted, file, {**env, "__truth__": truth}))
            except MissingMetric:
                continue
        if not expanded or any("{" in d for d in expanded):
            skipped.append(key)
            continue
        for d in sorted(expanded):
            value = lookup(metrics.file(file) or {}, d)
            leaves += [(file, leaf) for leaf in _flat_keys(value, d)]
    return list(dict.fromkeys(leaves)), skipped


def _flat_keys(value: Any, prefix: str) -> list[str]:
    if isinstance(value, dict) and value:
        return [k for sub, v in value.items() for k in _flat_keys(v, f"{prefix}.{sub}")]
    return [prefix]


def regression_compare(new: Any, old: Any, abs_tol: float, rel_tol: float) -> tuple[bool, str]:
    """Numbers: |new - old| <= abs_tol + rel_tol*|old|, also inside lists and mappings (e.g. the aligned-token
    scores); strings, booleans and the structure itself (lengths, keys) must be equal."""
    if _is_number(new) and _is_number(old):
        delta = abs(new - old)
        bound = abs_tol + rel_tol * abs(old)
        return delta <= bound, f"{old:.6g} -> {new:.6g} (|diff| {delta:.2g} > allowed {bound:.2g})"
    if isinstance(new, list) and isinstance(old, list) and len(new) == len(old):
        pairs = list(enumerate(zip(new, old)))
    elif isinstance(new, dict) and isinstance(old, dict) and new.keys() == old.keys():
        pairs = [(key, (new[key], old[key])) for key in old]
    else:
        return new == old, f"{json.dumps(old)} -> {json.dumps(new)}"
    for where, (a, b) in pairs:
        ok, why = regression_compare(a, b, abs_tol, rel_tol)
        if not ok:
            return False, f"[{where}] {why}"
    return True, ""


def regression_report(registry: dict, metrics: Metrics, old_value: Callable[[str, str], Any], abs_tol: float,
                      rel_tol: float, truth: Any = None) -> dict:
    """Compare every claim leaf with `old_value(file, dotted)` (which returns `_MISSING` when unknown)."""
    leaves, skipped = claim_leaves(registry, metrics, truth)
    moved, new_keys, checked = [], [], 0
    for file, dotted in leaves:
        new = lookup(metrics.file(file) or {}, dotted)
        old = old_value(file, dotted)
        if old is _MISSING:
            if new is not _MISSING:
                new_keys.append(f"{file}:{dotted}")
            continue
        checked += 1
        if new is _MISSING:
            moved.append(f"{file}:{dotted}: gone (was {json.dumps(old)})")
            continue
        ok, detail = regression_compare(new, old, abs_tol, rel_tol)
        if not ok:
            moved.append(f"{file}:{dotted}: {detail}")
    return {"checked": checked, "moved": moved, "new_keys": new_keys, "skipped": skipped,
            "abs": abs_tol, "rel": rel_tol, "ok": not moved}
