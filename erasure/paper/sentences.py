"""The rules that choose every sentence of the paper that compares or judges ("vanishes", "stays at full strength",
"much weaker", "hardly moves"), so that no sentence can contradict the numbers beside it.

Each rule reads this run's metrics and returns a choice; paper/template.md picks its sentence with
`{% if says.<rule>.choice == "..." %}` and states the rule in a comment beside it, and the paper's appendix
"How the sentences were chosen" lists every rule, what it measured and what it chose. A metric that is missing
gives the choice "unknown", for which the template has a neutral sentence.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from erasure.errors import ParamError
from erasure.mechanism.names import Component
from erasure.verification.metrics import MISSING, lookup

FULL_STRENGTH = 0.9  # "stays at full strength": the writer's median PR never drops below this before the erasers
VANISHED, FADED = 0.25, 0.75  # "vanishes" / "partly fades": what is left at the erasure checkpoint vs before it
WEAK_WRITE = 0.5  # below this at the entering checkpoint, the writer's output never reaches strength
KEEPS_LITTLE = 0.5  # "keeps only": the clean run keeps at most half of the writer at the erasure checkpoint
KEEPS_MOST, KEEPS_NEARLY_ALL = 0.5, 0.9  # the patched run at the erasure checkpoint
FALLS = 0.05  # "keeps falling": the patched median drops by more than this after the erasure checkpoint
NEAR_ZERO = 0.02  # an eraser's patched median within this of zero has "vanished" (fig2.negative_median's size)
HALF_GONE = 0.5  # ... and the patch must have removed at least half of its clean median
STRONG_R, WEAK_R = -0.5, -0.1  # Fig 4: "push back" strongly / weakly
MUCH_WEAKER = 0.5  # Fig 4: |r| against the full DLA at most half of |r| against the V-composition part
HARDLY_MOVES, COLLAPSES = 0.1, 0.5  # Fig 5: median over prompts of |resampled median - clean| / |clean|


@dataclass(frozen=True)
class Rule:
    id: str
    sentence: str  # which sentence of the paper it chooses
    rule: str  # the rule in words, thresholds included
    choose: Callable[[dict], tuple[str, dict]]  # metrics (by file stem) -> (choice, what it measured)
    choices: tuple[str, ...]  # every choice it can make besides "unknown" (each has its sentence in the template)


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def _at(tree: Any, *keys: Any) -> Any:
    """tree[k0][k1]... (erasure.verification.metrics.lookup), or None where a level is missing (a hand-edited metric:
    the rule says "unknown")."""
    value = lookup(tree, ".".join(str(k) for k in keys))
    return None if value is MISSING else value


def _median(f1: dict, ck: str, run: str) -> float | None:
    return _num(_at(f1, "checkpoints", ck, run, "all", "median"))


def writer_checkpoint(writer: str, checkpoints: list[str]) -> str | None:
    """The first checkpoint that holds the writer's output: resid_mid{l} for a head, resid_post{l} for an MLP."""
    try:
        c = Component.parse(writer)
    except ParamError:  # not a component name: no checkpoint, so the rule says "unknown"
        return None
    name = f"resid_{'post' if c.head is None else 'mid'}{c.layer}"
    return name if name in checkpoints else None


def _fig1(m: dict) -> tuple[dict, list[str], str | None, str | None]:
    f1 = m.get("fig1_resid") if isinstance(m.get("fig1_resid"), dict) else {}
    cks = list(f1["checkpoints"]) if isinstance(f1.get("checkpoints"), dict) else []
    return f1, cks, f1.get("entering_checkpoint"), f1.get("erasure_checkpoint")


def _heading(m: dict) -> tuple[str, dict]:
    f1, _, enter, erase = _fig1(m)
    before, after = _median(f1, enter, "clean"), _median(f1, erase, "clean")
    if before is None or after is None:
        return "unknown", {}
    measured = {"before": before, "after": after}
    if before < WEAK_WRITE:
        return "weak", measured
    left = after / before
    measured["left"] = left
    return ("vanishes" if left <= VANISHED else "fades" if left <= FADED else "stays"), measured


def _present(m: dict) -> tuple[str, dict]:
    f1, cks, enter, _ = _fig1(m)
    start = writer_checkpoint(str(f1.get("writer")), cks)
    if start is None or enter not in cks or cks.index(enter) < cks.index(start):
        return "unknown", {}
    window = cks[cks.index(start): cks.index(enter) + 1]
    values = [_median(f1, c, "clean") for c in window]
    if any(v is None for v in values):
        return "unknown", {}
    measured = {"min": min(values), "max": max(values), "from": start, "to": enter}
    return ("full" if min(values) >= FULL_STRENGTH else "not_full"), measured


def _erased(m: dict) -> tuple[str, dict]:
    f1, _, _, erase = _fig1(m)
    v = _median(f1, erase, "clean")
    if v is None:
        return "unknown", {}
    return ("none" if v <= 0 else "keeps_little" if v <= KEEPS_LITTLE else "keeps_much"), {"clean": v}


def _patched(m: dict) -> tuple[str, dict]:
    f1, _, _, erase = _fig1(m)
    v = _median(f1, erase, "patched")
    if v is None:
        return "unknown", {}
    choice = ("nearly_all" if v >= KEEPS_NEARLY_ALL else "most" if v >= KEEPS_MOST else "little" if v > 0
              else "none")
    return choice, {"patched": v}


def _vcomp(m: dict) -> tuple[str, dict]:
    share = _num(_at(m, "fig1_resid", "vcomp_share", "all"))
    if share is None:
        return "unknown", {}
    return ("undoes" if share >= 0 else "enlarges"), {"share": share}


def _later(m: dict) -> tuple[str, dict]:
    f1, cks, _, erase = _fig1(m)
    at, last = _median(f1, erase, "patched"), _median(f1, cks[-1], "patched") if cks else None
    if at is None or last is None:
        return "unknown", {}
    return ("falls" if last < at - FALLS else "holds"), {"at_erasure": at, "last": last}


def _vanish(m: dict) -> tuple[str, dict]:
    erasers = _at(m, "fig3_heads", "erasers") or _at(m, "fig2_components", "erasers") or []
    heads = _at(m, "fig3_heads", "heads")
    if not isinstance(erasers, list) or not isinstance(heads, dict):
        return "unknown", {}
    pairs = {e: (_num(_at(heads, e, "clean", "all", "median")), _num(_at(heads, e, "patched", "all", "median")))
             for e in erasers if isinstance(e, str) and e in heads}  # MLP erasers are not in Fig 3
    if not pairs or any(c is None or p is None for c, p in pairs.values()):
        return "unknown", {}
    kept = sorted(e for e, (c, p) in pairs.items() if not (c < 0 and abs(p) <= NEAR_ZERO and p / c <= HALF_GONE))
    measured = {"largest": max(abs(p) for _, p in pairs.values()), "not_near_zero": kept}
    return ("near_zero" if not kept else "not_near_zero"), measured


def _fig4(m: dict, part: str) -> dict:
    line = _at(m, "fig4_dla", part)
    return line if isinstance(line, dict) else {}


def _push(m: dict) -> tuple[str, dict]:
    r = _num(_fig4(m, "paper").get("r"))
    if r is None:
        return "unknown", {}
    return ("strong" if r <= STRONG_R else "weak" if r <= WEAK_R else "none"), {"r": r}


def _slope(m: dict) -> tuple[str, dict]:
    line = _fig4(m, "paper")
    slope, low, high = (_num(line.get(k)) for k in ("slope", "slope_low", "slope_high"))
    if slope is None:
        return "unknown", {}
    measured = {"slope": slope, "low": low, "high": high}
    if low is None or high is None:  # no interval: the sign alone
        return ("takes_back" if slope < 0 else "adds"), measured
    return ("takes_back" if high < 0 else "adds" if low > 0 else "neither"), measured


def _full(m: dict) -> tuple[str, dict]:
    r, r_full = _num(_fig4(m, "paper").get("r")), _num(_fig4(m, "full_erasers").get("r"))
    if r is None or r_full is None:
        return "unknown", {}
    measured = {"r": r, "r_full": r_full}
    if r > WEAK_R:  # the erasers do not push back through V-composition: nothing for the full DLA to hide
        return "no_relation", measured
    if abs(r_full) <= MUCH_WEAKER * abs(r):
        return "much_weaker", measured
    return ("weaker" if abs(r_full) < abs(r) else "not_weaker"), measured


def _changes(m: dict, which: str) -> list[float] | None:
    prompts = _at(m, "fig5_adversarial", "prompts")
    if not isinstance(prompts, dict):
        return None
    out = []
    for p in prompts.values():
        if not isinstance(p, dict) or p.get("applicable") is False:
            continue
        head = p.get(which)
        clean, resampled = _num(_at(p, "heads", head, "clean")), _num(_at(p, "heads", head, "resampled", "median"))
        if clean is None or resampled is None or clean == 0:
            return None
        out.append(abs(resampled - clean) / abs(clean))
    return out or None


def _writer_moves(m: dict) -> tuple[str, dict]:
    changes = _changes(m, "writer")
    if changes is None:
        return "unknown", {}
    med = statistics.median(changes)
    return ("hardly_moves" if med < HARDLY_MOVES else "moves"), {"median_change": med}


def _others_drop(m: dict) -> tuple[str, dict]:
    changes = _changes(m, "comparison_head")
    if changes is None:
        return "unknown", {}
    med = statistics.median(changes)
    return ("collapses" if med > COLLAPSES else "holds"), {"median_change": med}


RULES = (
    Rule("fig1_heading", "Fig 1's heading: the writer's output vanishes / partly fades / stays / is weak",
         f"clean median PR at the erasure checkpoint over that at the entering checkpoint: <= {VANISHED} vanishes, "
         f"<= {FADED} partly fades, else stays; weak when the entering checkpoint's median is below {WEAK_WRITE}",
         _heading,
         ("vanishes", "fades", "stays", "weak")),
    Rule("fig1_present", "Fig 1: the writer's output stays (or not) at full strength until the erasers' layer",
         f"full strength when the clean median PR is >= {FULL_STRENGTH} at every checkpoint from the writer's "
         "first to the entering checkpoint", _present,
         ("full", "not_full")),
    Rule("fig1_erased", "Fig 1: the clean run keeps none / only / still part of the writer after the erasers",
         f"keeps none when the clean median PR at the erasure checkpoint is <= 0, keeps only when <= {KEEPS_LITTLE}, "
         "else still keeps", _erased,
         ("none", "keeps_little", "keeps_much")),
    Rule("fig1_patched", "Fig 1: with the patch it keeps nearly all / most / little / none of the writer",
         f"patched median PR at the erasure checkpoint >= {KEEPS_NEARLY_ALL} nearly all, >= {KEEPS_MOST} most, "
         "> 0 little, else none", _patched,
         ("nearly_all", "most", "little", "none")),
    Rule("fig1_vcomp", "Fig 1: the patch undoes (or enlarges) part of the erasure",
         "undoes when the V-composition share (all positions) is >= 0, else enlarges", _vcomp,
         ("undoes", "enlarges")),
    Rule("fig1_later", "Fig 1: in the patched run the PR keeps falling (or not) after the erasers' layer",
         f"falls when the patched median at the last checkpoint is more than {FALLS} below that at the erasure "
         "checkpoint", _later,
         ("falls", "holds")),
    Rule("fig3_vanish", "Fig 3: with the patch the erasers' medians are (or are not) near zero",
         f"near zero when every eraser head's clean median is negative, its patched median within ±{NEAR_ZERO} of "
         f"zero and at most {HALF_GONE} of the clean one (MLP erasers are not in Fig 3; with no eraser head the rule "
         "cannot judge)", _vanish,
         ("near_zero", "not_near_zero")),
    Rule("fig4_push", "Fig 4: the erasers push back strongly / weakly / not at all",
         f"Pearson r <= {STRONG_R} strongly, <= {WEAK_R} weakly, else not", _push,
         ("strong", "weak", "none")),
    Rule("fig4_slope", "Fig 4: the erasers take back / add to / neither the writer's apparent direct effect",
         "takes back when the slope's interval lies below zero, adds when above, neither when it holds zero (the "
         "sign alone without an interval)", _slope,
         ("takes_back", "adds", "neither")),
    Rule("fig4_full", "Fig 4: against the erasers' full DLA the relation is much weaker / weaker / not weaker / absent",
         f"no relation to weaken when r (V-composition part) > {WEAK_R}; else much weaker when |r (full DLA)| <= "
         f"{MUCH_WEAKER} x |r|, weaker when smaller, else not weaker", _full,
         ("no_relation", "much_weaker", "weaker", "not_weaker")),
    Rule("fig5_writer", "Fig 5: the writer's DLA hardly moves (or moves) when its input is resampled",
         f"hardly moves when the median over prompts of |resampled median - clean| / |clean| is < {HARDLY_MOVES}",
         _writer_moves,
         ("hardly_moves", "moves")),
    Rule("fig5_others", "Fig 5: the comparison heads' DLA collapses (or holds) under the same resampling",
         f"collapses when the median over prompts of their relative change is > {COLLAPSES}", _others_drop,
         ("collapses", "holds")),
)


def sentence_choices(metrics: dict) -> dict[str, dict]:
    """rule id -> {choice, measured, rule, sentence}: what the template's conditional sentences read."""
    out = {}
    for rule in RULES:
        choice, measured = rule.choose(metrics)
        assert choice in (*rule.choices, "unknown"), (rule.id, choice)
        out[rule.id] = {"choice": choice, "measured": measured, "rule": rule.rule, "sentence": rule.sentence}
    return out
