"""Regression: did a metric that a claim reads move since a reference run (a git revision or a stored directory)?

A numeric metric moved when |new - old| > abs + rel*|old| (params `paper.regression`); strings, booleans and
lists (top-2 tokens, eraser sets) must be equal; a metric the reference has and the work tree lost moved.
A revision's values are read from its committed metrics files (`git show REV:file`): the claims read the figures'
full records, which are not DVC metrics (metrics/headline/ is).
"""
from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

from erasure.verification.claim_schema import is_number
from erasure.verification.metrics import MISSING, Metrics, MissingMetric, lookup, split_key, truth_dict
from erasure.verification.registry import metric_keys_of


def claim_leaves(registry: dict, metrics: Metrics, truth: Any = None) -> tuple[list[tuple[str, str]], list[str]]:
    """(file, dotted) of every leaf a claim or planted check reads, placeholders expanded; plus unexpandable keys.

    A key naming a mapping (e.g. a stats dict for keys_present) contributes every leaf under it; `for_each`
    loop variables are unrolled over the planted truth when it is given.
    """
    loops: list[dict] = [{}]
    if truth is not None:
        td = truth_dict(truth)
        for entry in registry.get("planted_checks") or []:
            loop = entry.get("for_each")
            if loop and not any(loop["var"] in env for env in loops):
                items = td.get(loop["truth"]) or {}
                items = sorted(items) if isinstance(items, dict) else list(items)
                loops = [{**env, loop["var"]: item} for env in loops for item in items] or loops
    leaves: list[tuple[str, str]] = []
    skipped: list[str] = []
    for key in metric_keys_of(registry):
        file, dotted = split_key(key)
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
    if is_number(new) and is_number(old):
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
    """Compare every claim leaf with `old_value(file, dotted)` (which returns `MISSING` when unknown)."""
    leaves, skipped = claim_leaves(registry, metrics, truth)
    moved, new_keys, checked = [], [], 0
    for file, dotted in leaves:
        new = lookup(metrics.file(file) or {}, dotted)
        old = old_value(file, dotted)
        if old is MISSING:
            if new is not MISSING:
                new_keys.append(f"{file}:{dotted}")
            continue
        checked += 1
        if new is MISSING:
            moved.append(f"{file}:{dotted}: gone (was {json.dumps(old)})")
            continue
        ok, detail = regression_compare(new, old, abs_tol, rel_tol)
        if not ok:
            moved.append(f"{file}:{dotted}: {detail}")
    return {"checked": checked, "moved": moved, "new_keys": new_keys, "skipped": skipped,
            "abs": abs_tol, "rel": rel_tol, "ok": not moved}


def git_old_file(rev: str, file: str):
    """The JSON of `file` as committed at git revision `rev`, or None when it is not there."""
    proc = subprocess.run(["git", "show", f"{rev}:{file}"], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        return None
