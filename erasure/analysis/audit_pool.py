"""The DLA audit's statistics (docs/methods.md §9): per component, the repair share and its parts pooled over the
top tokens by |ΔDE|, with the prompt bootstrap (erasure.mechanism.bootstrap); numpy only.

Pooling: over the k = ceil(top_fraction x tokens) tokens of largest |ΔDE|, share = Σ sgn(ΔDE)·R / Σ|ΔDE| (signs
cannot cancel), the same for each part of R, so the parts add up to the repair share. Each bootstrap draw
resamples the prompts and takes the top k of ITS token multiset, so the interval includes the choice of tokens.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from erasure.mechanism.bootstrap import PromptBootstrap

if TYPE_CHECKING:
    from erasure.params.load import Params

MIN_RELATIVE_CHANGE = 0.01  # null rule (docs/methods.md §9): the ablation must move c's DLA by >= 1% of it ...
MIN_ABS_CHANGE = 1e-5  # ... and by more than float32 noise, relative to the RMS clean logit along u


@dataclass(frozen=True)
class AuditConfig:
    ablation: str  # zero | mean | resample
    direction: str  # next_token | top2
    top_fraction: float
    seed: int  # resample donors
    batch_size: int  # prompts per clean pass; the ablated copies of a layer run as (copies x batch_size)

    @classmethod
    def of(cls, params: Params) -> AuditConfig:
        """params' `audit` section, batched as `activations.batch_size` (the stage and its benchmark alike)."""
        a = params.audit
        return cls(a.ablation, a.direction, a.top_fraction, a.seed, params.activations.batch_size)


@dataclass
class TokenValues:
    """Per (prompt, position) scalars of one component (float64 from float32 sums)."""

    delta_de: np.ndarray
    total: np.ndarray
    heads: np.ndarray
    mlps: np.ndarray
    de_clean: np.ndarray
    erasers: np.ndarray | None = None

    @property
    def repair(self) -> np.ndarray:
        return self.delta_de - self.total

    @property
    def ln(self) -> np.ndarray:
        return self.repair - self.heads - self.mlps


# ---- pooling over the top tokens, with the prompt bootstrap ----
def top_k(n_valid: int, fraction: float) -> int:
    """How many tokens the top `fraction` is: ceil(fraction * n_valid), at least one."""
    return max(1, math.ceil(fraction * n_valid - 1e-9))


def pooled_top(key: np.ndarray, values: np.ndarray, weights: np.ndarray, k: int, prompt_of: np.ndarray,
               counts: np.ndarray | None = None) -> np.ndarray:
    """Σ_top values / Σ_top weights over the k tokens of largest `key` (ties: first token first).

    key, weights: (tokens,); values: (stats, tokens); prompt_of: each token's prompt. With `counts` (draws,
    prompts), every draw takes the top k of ITS resampled multiset (a prompt drawn twice counts its tokens twice;
    a token on the boundary counts as many copies as fit): returns (stats, draws); else (stats,)."""
    order = np.argsort(-key, kind="stable")
    if counts is None:
        top = order[:k]
        return values[:, top].sum(1) / weights[top].sum()
    out = np.empty((values.shape[0], counts.shape[0]))
    m = min(order.size, 4 * k)
    while True:
        head = order[:m]
        w = counts[:, prompt_of[head]].astype(np.float64)  # (draws, m)
        cum = np.cumsum(w, axis=1)
        if m == order.size or cum[:, -1].min() >= k:
            break
        m = min(order.size, 2 * m)
    take = np.clip(k - (cum - w), 0, w)  # copies of each token inside the draw's top k
    out[:] = (take @ values[:, head].T).T / (take @ weights[head])
    return out


def summarize_component(tv: TokenValues, valid: np.ndarray, cfg: AuditConfig, boot: PromptBootstrap,
                        logit_rms: float) -> dict:
    """One component's row of metrics/dla_audit.json (shares with their intervals; null with a reason)."""
    n, p = valid.shape
    flat = valid.ravel()
    prompt_of = np.repeat(np.arange(n), p)[flat]
    dde = tv.delta_de.ravel()[flat]
    sgn = np.sign(dde)
    k = top_k(int(flat.sum()), cfg.top_fraction)
    parts = {"repair_share": tv.repair, "heads_share": tv.heads, "mlps_share": tv.mlps, "ln_share": tv.ln}
    if tv.erasers is not None:
        parts["eraser_share"] = tv.erasers
    values = np.vstack([np.abs(dde), sgn * tv.total.ravel()[flat]] + [sgn * v.ravel()[flat] for v in parts.values()])
    ones, absd = np.ones_like(dde), np.abs(dde)
    point_mean = pooled_top(absd, values[:2], ones, k, prompt_of)
    de_top = pooled_top(absd, np.abs(tv.de_clean.ravel()[flat])[None], ones, k, prompt_of)[0]
    row: dict = {"direct": float(point_mean[0]), "total": float(point_mean[1])}
    reason = None
    if point_mean[0] < MIN_ABS_CHANGE * logit_rms:
        reason = (f"mean |ΔDE| of the top tokens {point_mean[0]:.3g} is below {MIN_ABS_CHANGE:g} x the RMS logit "
                  f"{logit_rms:.3g} (float32 noise)")
    elif point_mean[0] < MIN_RELATIVE_CHANGE * de_top:
        reason = (f"the ablation moves this component's DLA by {point_mean[0]:.3g} on its top tokens, under "
                  f"{MIN_RELATIVE_CHANGE:.0%} of its DLA there ({de_top:.3g}): its output hardly changes")
    shares = pooled_top(absd, values[2:], absd, k, prompt_of)
    draws = pooled_top(absd, values[2:], absd, k, prompt_of, boot.counts)
    for j, name in enumerate(parts):
        if reason is None:
            lo, hi = boot.interval(draws[j])
            row |= {name: float(shares[j]), f"{name}_low": lo, f"{name}_high": hi}
        else:
            row |= {name: None, f"{name}_low": None, f"{name}_high": None}
    if tv.erasers is None:
        row |= {"eraser_share": None, "eraser_share_low": None, "eraser_share_high": None}
    row |= {"n": k, "null_reason": reason}
    if cfg.ablation == "resample":
        row |= rushing_nanda(tv, valid, cfg, boot)
    return row


def rushing_nanda(tv: TokenValues, valid: np.ndarray, cfg: AuditConfig, boot: PromptBootstrap) -> dict:
    """Rushing & Nanda's own statistic: the top fraction of tokens by SIGNED clean direct effect, per token
    clip(R / DE_clean, 0, 1), averaged; with the same prompt bootstrap."""
    n, p = valid.shape
    flat = valid.ravel()
    prompt_of = np.repeat(np.arange(n), p)[flat]
    de = tv.de_clean.ravel()[flat]
    k = top_k(int(flat.sum()), cfg.top_fraction)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(de > 0, np.clip(tv.repair.ravel()[flat] / de, 0.0, 1.0), 0.0)
    ones = np.ones_like(de)
    value = float(pooled_top(de, ratio[None], ones, k, prompt_of)[0])
    lo, hi = boot.interval(pooled_top(de, ratio[None], ones, k, prompt_of, boot.counts)[0])
    return {"rn_self_repair": value, "rn_self_repair_low": lo, "rn_self_repair_high": hi}


# ---- the stage's outputs ----
NULL_RULE = (f"a share is null when the mean |ΔDE| of its top tokens is under {MIN_RELATIVE_CHANGE:.0%} of the "
             f"component's own mean |DLA| there (its output hardly changes under the ablation) or under "
             f"{MIN_ABS_CHANGE:g} x the RMS clean logit along the direction (float32 noise)")
HEADLINE_TOP = 3  # components in the DVC metrics file
MOST_REPAIRED = 5  # components in the paper's table


def relative_depth(name: str, n_layers: int) -> float:
    """Where a component sits, 0 (input) to 1 (output): the middle of its sublayer (heads, then the MLP)."""
    from erasure.mechanism.names import Component

    comp = Component.parse(name)
    return (comp.layer + (0.25 if comp.is_head else 0.75)) / n_layers


def audit_record(tokens: dict[str, TokenValues], valid: np.ndarray, logit_rms: float, cfg: AuditConfig,
                 boot: PromptBootstrap, header: dict, n_layers: int) -> dict:
    """metrics/dla_audit.json: the header, then one row per component (every head and MLP, in model order)."""
    rows = {}
    for name, tv in tokens.items():
        rows[name] = summarize_component(tv, valid, cfg, boot, logit_rms) | {
            "relative_depth": relative_depth(name, n_layers)}
        rows[name]["verdict"] = verdict(rows[name])
        rows[name]["main_part"] = main_part(rows[name])
    ranked = sorted((r["repair_share"], name) for name, r in rows.items() if r["repair_share"] is not None)
    return {
        **header,
        "ablation": cfg.ablation,
        "direction": cfg.direction,
        "top_fraction": cfg.top_fraction,
        "n_tokens": int(valid.sum()),
        "n_top": top_k(int(valid.sum()), cfg.top_fraction),
        "logit_rms": logit_rms,
        "null_rule": NULL_RULE,
        "n_null": sum(r["repair_share"] is None for r in rows.values()),
        "bootstrap": boot.record(),
        "ranking": [name for _, name in sorted(ranked, key=lambda t: -t[0])],
        "most_repaired": [name for _, name in sorted(ranked, key=lambda t: -t[0])][:MOST_REPAIRED],
        "verdicts": verdicts(rows),
        "components": rows,
    }


MOSTLY_UNDONE = 0.5  # a component's DLA "overstates by more than half" when its interval lies above this


def verdict(row: dict) -> str:
    """One component's verdict by its repair interval: mostly_undone (above MOSTLY_UNDONE), overstated (above 0),
    understated (below 0), consistent (holds 0) or null."""
    if row["repair_share"] is None:
        return "null"
    if row["repair_share_low"] > MOSTLY_UNDONE:
        return "mostly_undone"
    if row["repair_share_low"] > 0:
        return "overstated"
    return "understated" if row["repair_share_high"] < 0 else "consistent"


def main_part(row: dict) -> str | None:
    """Which part of the repair is largest in size: heads, mlps or ln (None when null)."""
    if row["repair_share"] is None:
        return None
    return max(("heads", "mlps", "ln"), key=lambda k: abs(row[f"{k}_share"]))


def verdicts(rows: dict[str, dict]) -> dict:
    """How many components' DLA the audit finds overstated (repair interval above 0), understated (below 0: the
    rest of the model amplifies it), consistent with no repair (interval holds 0), more than half undone (interval
    above MOSTLY_UNDONE) or null (docs/methods.md §9)."""
    shares = {n: r for n, r in rows.items() if r["repair_share"] is not None}
    over = [n for n, r in shares.items() if r["repair_share_low"] > 0]
    return {
        "n_components": len(rows),
        "overstated": len(over),
        "understated": sum(r["repair_share_high"] < 0 for r in shares.values()),
        "consistent": sum(r["repair_share_low"] <= 0 <= r["repair_share_high"] for r in shares.values()),
        "null": len(rows) - len(shares),
        "mostly_undone_threshold": MOSTLY_UNDONE,
        "mostly_undone": [n for n in over if shares[n]["repair_share_low"] > MOSTLY_UNDONE],
    }


STATUS = {"mostly_undone": "UNDONE", "overstated": "OVER", "understated": "UNDER", "consistent": "OK",
          "null": "NULL"}  # verdict -> the DVC metrics' status cell (no wider than metrics/headline's NOT RUN)


def headline(record: dict) -> dict[str, dict]:
    """The audit's DVC metrics, one small file per row with metrics/headline/'s keys (file stem -> row): the
    HEADLINE_TOP most repaired components and the run's writer, one file each named by the component (`value` =
    repair share, `low`/`high`, `status` = its verdict's short form), so `dvc metrics diff` compares a component
    with itself; and the count of null shares."""
    names = list(dict.fromkeys(record["ranking"][:HEADLINE_TOP] + [record.get("writer")]))
    rows = {}
    for name in names:
        r = record["components"].get(name)
        if r is not None:
            rows[f"audit_{name}"] = {"value": r["repair_share"], "low": r["repair_share_low"],
                                     "high": r["repair_share_high"], "status": STATUS[r["verdict"]]}
    rows["audit_nulls"] = {"value": record["n_null"]}
    return rows


def plot_rows(record: dict) -> list[dict]:
    """plots/dla_audit.csv: one row per component (null shares as empty cells)."""
    keys = ("direct", "total", "repair_share", "repair_share_low", "repair_share_high", "heads_share", "mlps_share",
            "ln_share", "eraser_share")
    return [{"component": name, "relative_depth": r["relative_depth"], **{k: r[k] for k in keys}}
            for name, r in record["components"].items()]
