"""Synthetic metrics in the documented shapes (docs/DESIGN.md + the fig4/fig5/aligned/discovery keys), for the
verification and paper tests. Values of quantitative claims are set as paper_value + k * step (step: the paper's
rounding for a claim judged by our interval, else its tolerance), never copied from an output; every claimed
statistic carries an interval `<key>_low` / `<key>_high` (docs/DESIGN.md)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from erasure.verification.claim_schema import is_quantitative
from erasure.verification.registry import load_claims

ROOT = Path(__file__).resolve().parents[1]


REGISTRY = load_claims(ROOT / "paper/claims.yaml")

ERASERS = ["L2H2", "L2H3", "L2H4", "L2H5", "L2H6", "L2H7"]

CHECKPOINTS = ["resid_pre0"] + [f"resid_{k}{i}" for i in range(4) for k in ("mid", "post")]


BOOTSTRAP = {"level": 0.95, "n_draws": 1000, "seed": 0, "unit": "prompt"}


def with_intervals(values: dict, names: tuple[str, ...], half_width: float) -> dict:
    """values plus `<name>_low` / `<name>_high` = value -+ half_width for each name."""
    out = dict(values)
    for name in names:
        out[f"{name}_low"], out[f"{name}_high"] = values[name] - half_width, values[name] + half_width
    return out


def stats(median: float, spread: float = 0.1) -> dict:
    plain = {"median": median, "q25": median - spread, "q75": median + spread, "q12_5": median - 2 * spread,
             "q87_5": median + 2 * spread, "mean": median, "n": 1000}
    return with_intervals(plain, ("median", "q25", "q75"), spread / 10)


def pools(median: float, spread: float = 0.1) -> dict:
    return {"all": stats(median, spread), "no_bos": stats(median, spread)}


def synthetic_metrics(model: str = "gelu-4l", writer: str = "L0H2", erasers: dict | None = None,
                      token_head: str = "L3H1") -> dict:
    """A full set of metrics files that satisfies every qualitative rule; quantitative values set separately."""
    erasers = erasers or {"L2H2": 0.145, "L2H3": 0.035, "L2H4": 0.12, "L2H5": 0.26, "L2H6": 0.175, "L2H7": 0.14}
    total = sum(erasers.values())
    head = {"model": model, "writer": writer, "erasers": list(erasers), "n_prompts": 30, "seq_len": 64,
            "bootstrap": BOOTSTRAP}
    clean = [0.0, 1.0, 1.0, 1.0, 1.0, 1.0 - total, 0.09, 0.05, 0.05]
    patched = [0.0, 1.0, 1.0, 1.0, 1.0, 0.91, 0.65, 0.57, 0.48]
    fig1 = {**head, "checkpoints": {c: {"clean": pools(a), "patched": pools(b)}
                                    for c, a, b in zip(CHECKPOINTS, clean, patched)},
            "erasure_checkpoint": "resid_mid2", "entering_checkpoint": "resid_post1",
            "vcomp_share": with_intervals({"all": 0.85, "no_bos": 0.86}, ("all", "no_bos"), 0.02)}
    comps = [f"L{l}H{h}" for l in range(4) for h in range(8)] + [f"MLP{l}" for l in range(4)]
    components = {}
    for c in comps:
        if c == writer:
            continue
        f = erasers.get(c)
        components[c] = pools(-f, min(0.1, f / 2)) if f else pools(0.0, 0.05)
    fig2 = {**head, "components": components, "eraser_sum": pools(-total, 0.2),
            "erasure_total_pct": with_intervals({"all": 100 * total, "no_bos": 100 * total}, ("all", "no_bos"), 1.0),
            "negative_median_threshold": 0.02, "negative_heads": list(erasers)}
    fig3 = {**head, "heads": {f"L2H{h}": {"clean": pools(-erasers.get(f"L2H{h}", 0.0) or 0.0,
                                                         min(0.1, erasers.get(f"L2H{h}", 0.2) / 2)),
                                          "patched": pools(0.005, 0.1)} for h in range(8)}}
    fit_keys = ("r", "slope", "intercept")
    fit = {**with_intervals({"r": -0.7, "slope": -0.6, "intercept": 0.0}, fit_keys, 0.05),
           "n_points": 30 * 64, "n_prompts": 30, "positions": "all"}
    fig4 = {**head, "paper": fit, "full_erasers": with_intervals({"r": -0.16, "slope": -0.1, "intercept": 0.0},
                                                                 fit_keys, 0.05),
            "code_variant": {"r": -0.8, "slope": -0.72, "intercept": 0.05, "n_points": 100}}
    pairs = {"p1": [" bottom", " top"], "p2": [" State", " University"], "p3": [" __", " get"],
             "p4": [" Church", " church"]}
    comparison = {"p1": token_head, "p2": "L2H1", "p3": "L3H5", "p4": "L2H2"}
    prompts = {}
    for p, pair in pairs.items():
        heads = {writer: {"clean": 0.6, "resampled": stats(0.61, 0.02)},
                 comparison[p]: {"clean": 1.0, "resampled": stats(0.1, 0.2)},
                 "L3H0": {"clean": 0.5, "resampled": stats(0.2, 0.2)}}
        prompts[p] = {"top2": pair, "top2_ids": [1, 2], "paper_pair_logit_diff": 1.0, "heads": heads, "writer": writer,
                      "writer_input": "ln1 (q, k, v)", "comparison_head": comparison[p], "comparison_source": "params",
                      "auto_head": "L3H0"}
    fig5 = {"model": model, "bootstrap": {**BOOTSTRAP, "unit": "resampled row"}, "prompts": prompts}
    tokens = [" bottom", " State", " __", " Church"] + [f" tok{i}" for i in range(16)]
    aligned = {"model": model, "top": [{"token": t, "score": 1.0 - i / 40} for i, t in enumerate(tokens)]}
    discovery = {"model": model, "selected": {"writer": writer, "erasers": list(erasers)}, "rediscovered": True}
    return {"metrics/fig1_resid.json": fig1, "metrics/fig2_components.json": fig2, "metrics/fig3_heads.json": fig3,
            "metrics/fig4_dla.json": fig4, "metrics/fig5_adversarial.json": fig5,
            "metrics/aligned_tokens.json": aligned, "metrics/discovery.json": discovery,
            "metrics/dla_audit.json": audit_metrics(model, writer, list(erasers), total)}


def audit_metrics(model: str, writer: str, erasers: list[str], total: float, n_layers: int = 4,
                  n_heads: int = 8) -> dict:
    """metrics/dla_audit.json through the real pooling (erasure.analysis.audit_pool) from synthetic token values:
    the writer's repair share `total`, all of it its erasers'; the last layer repairing only through the norm."""
    import numpy as np

    from erasure.analysis.audit_pool import AuditConfig, TokenValues, audit_record
    from erasure.mechanism.bootstrap import PromptBootstrap
    from erasure.mechanism.names import all_components

    rng = np.random.default_rng(0)
    tokens = {}
    for c in all_components(n_layers, n_heads):
        d = rng.normal(size=(6, 64))
        share, heads, mlps = (total, total, 0.0) if c.name == writer else (
            (0.01, 0.0, 0.0) if c.layer == n_layers - 1 else (0.1, 0.05, 0.03))
        tokens[c.name] = TokenValues(delta_de=d, total=(1 - share) * d, heads=heads * d, mlps=mlps * d, de_clean=d,
                                     erasers=total * d if c.name == writer else None)
    cfg = AuditConfig("zero", "next_token", 0.02, 0, 2)
    header = {"model": model, "n_prompts": 6, "seq_len": 64, "prompts_sha256": "0" * 64,
              "architecture": {"n_layers": n_layers, "n_heads": n_heads}, "writer": writer,
              "erasers": {writer: erasers}}
    return audit_record(tokens, np.ones((6, 64), bool), 1.0, cfg, PromptBootstrap.create(6, 50, 0, 0.95), header,
                        n_layers)


def set_key(files: dict, key: str, value) -> None:
    file, dotted = key.split(":", 1)
    node = files[file]
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def numeric_claims() -> list[dict]:
    return [c for c in REGISTRY["claims"] if is_quantitative(c["paper_value"])]


def judged_by_interval(claim: dict) -> bool:
    return bool(claim["tolerance"].get("interval"))


def step(claim: dict, paper_value: float) -> float:
    """The claim's unit of closeness: the paper's rounding when our interval judges it, else its tolerance."""
    if judged_by_interval(claim):
        return claim["rounding"]
    tol = claim["tolerance"]
    return tol["abs"] if "abs" in tol else tol["rel"] * abs(paper_value)


def set_claim(files: dict, claim: dict, k: float, half_width: float | None = None) -> None:
    """Every part of the claim at paper_value + k steps; an interval claim's interval at that value -+ half_width
    (default 10 roundings: wide enough for two claims that share a key, e.g. the paper's and the blog's median)."""
    value, metric = claim["paper_value"], claim["metric"]
    parts = value.items() if isinstance(value, dict) else [(None, value)]
    for part, ref in parts:
        key = metric[part] if part is not None else metric
        x = ref + k * step(claim, ref)
        set_key(files, key, x)
        if judged_by_interval(claim):
            w = 10 * claim["rounding"] if half_width is None else half_width
            set_interval(files, key, x - w, x + w)


def set_interval(files: dict, key: str, low: float, high: float) -> None:
    set_key(files, key + "_low", low)
    set_key(files, key + "_high", high)


def gelu_metrics(k: float) -> dict:
    """Synthetic gelu-4l metrics with every quantitative claim at paper_value + k steps."""
    files = synthetic_metrics("gelu-4l")
    for claim in numeric_claims():
        set_claim(files, claim, k)
    return files


# The stage layout of dvc.yaml, reduced to what provenance reads (a fixture: the tests do not depend on the
# lead's draft of dvc.yaml).
DVC_YAML = """
stages:
  discover:
    cmd: python stages/discover.py
    params: [model, "models.${model}", discovery]
    metrics: [{metrics/discovery.json: {cache: false}}]
    plots: [{figures/erasure_atlas.png: {cache: false}}, {figures/persistence.png: {cache: false}}]
  fig1_resid:
    cmd: python stages/fig1_resid.py
    params: [stats, fig1]
    metrics: [{metrics/fig1_resid.json: {cache: false}}]
    plots: [{figures/fig1_resid.png: {cache: false}}]
  fig2_components:
    cmd: python stages/fig2_components.py
    params: [stats, fig2]
    metrics: [{metrics/fig2_components.json: {cache: false}}]
    plots: [{figures/fig2_components.png: {cache: false}}]
  fig3_heads:
    cmd: python stages/fig3_heads.py
    params: [stats, fig3]
    metrics: [{metrics/fig3_heads.json: {cache: false}}]
    plots: [{figures/fig3_heads.png: {cache: false}}]
  fig4_dla:
    cmd: python stages/fig4_dla.py
    params: [model, "models.${model}", fig4]
    metrics: [{metrics/fig4_dla.json: {cache: false}}, {metrics/aligned_tokens.json: {cache: false}}]
    plots: [{figures/fig4_dla.png: {cache: false}}]
  fig5_adversarial:
    cmd: python stages/fig5_adversarial.py
    params: [model, "models.${model}", fig5]
    metrics: [{metrics/fig5_adversarial.json: {cache: false}}]
    plots: [{figures/fig5_adversarial.png: {cache: false}}]
"""


def write_tree(root: Path, files: dict, model: str) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(json.dumps(data))
    (root / "dvc.yaml").write_text(DVC_YAML)
    fig1 = (root / "metrics/fig1_resid.json").read_bytes()
    lock = {"schema": "2.0", "stages": {"fig1_resid": {"outs": [
        {"path": "metrics/fig1_resid.json", "md5": hashlib.md5(fig1).hexdigest()}]}}}
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))


def discovery_record(model: str, writer: str = "L0H2", erasure: float = 0.86, top_frequency: float = 1.0,
                     heads: float = 0.86, mlps: float = 0.0, erasers: tuple = ("L2H2", "L2H3"),
                     vcomp: float | None = 0.99, positions: str = "standard") -> dict:
    """A metrics/discovery.json in the shape stage discover writes, with only what the comparison reads."""
    def ci(key, x, h=0.02):  # `x` and its interval at `<key>_low`, `<key>_high` (null without a value)
        return {key: x, f"{key}_low": None if x is None else round(x - h, 6),
                f"{key}_high": None if x is None else round(x + h, 6)}
    top = {
        "name": writer, **ci("erasure", erasure), "top_frequency": top_frequency,
        "erasing_layer": 2, "min_checkpoint": "resid_mid2",
        "erasers": [{"name": e, "median": -0.1} for e in erasers],
        "eraser_sum": None if not erasers else {"clean_median": -erasure, "patched_median": -0.01,
                                                **ci("vcomp_share", vcomp)},
        "erased_by": {"checkpoint": "resid_mid2", "heads": ci("median", heads), "mlps": ci("median", mlps)},
        "subset": {"erasure_centred": erasure},
    }
    other = {**top, "name": "MLP0", **ci("erasure", 0.04), "top_frequency": 0.0, "erasers": [],
             "eraser_sum": None}
    tops = [{"name": writer, "frequency": top_frequency}]
    if top_frequency < 1:
        tops.append({"name": "MLP0", "frequency": round(1 - top_frequency, 6)})
    return {
        "model": model, "n_prompts": 32, "seq_len": 256, "n_writers": 27, "n_writers_relevant": 2,
        "architecture": {"n_layers": 4, "n_heads": 8, "positional_embedding_type": positions},
        "selected": {"writer": writer if erasers else None, "erasers": list(erasers), "rank": 1 if erasers else None},
        "bootstrap": {**BOOTSTRAP, "n_draws": 200},
        "selection_frequency": {"top_writer": writer, "top_writer_frequency": top_frequency, "writers": tops},
        "writers": [top, other],
    }


def sweep_records() -> dict[str, dict]:
    """sweep/<model>.json of the three compare models as scripts/collect_sweep.py writes them: planted-4l with its
    planted roles, SmolLM2 without a gelu-4l-like erasure, Gemma 3 with one."""
    from erasure.planted_truth import planted_truth

    truth = planted_truth()
    discoveries = {
        "planted-4l": discovery_record("planted-4l", erasers=tuple(sorted(truth.erasers))),
        "smollm2-135m": discovery_record("smollm2-135m", writer="L3H1", erasure=0.62, top_frequency=0.41, heads=0.05,
                                         mlps=0.57, erasers=("MLP4",), vcomp=0.004, positions="rotary"),
        "gemma3-270m": discovery_record("gemma3-270m", writer="MLP11", positions="rotary"),
    }
    return {model: {"model": model, "experiment": f"exp-{model}", "rev": "a" * 40, "discovery": d}
            for model, d in discoveries.items()}


def comparison_metrics() -> dict:
    """metrics/comparison.json as stage compare writes it: planted-4l recovered, one rotary model without a
    gelu-4l-like erasure, one model not run."""
    from erasure.analysis.comparison import compare
    from erasure.params.sections import Compare
    from erasure.planted_truth import planted_truth

    cp = Compare.model_validate({
        "models": ["planted-4l", "smollm2-135m", "gemma3-270m"], "control": "planted-4l", "top_writers": 3,
        "gelu4l_like": {"min_top_frequency": 0.8, "min_erasure": 0.3, "min_head_share": 0.5, "min_vcomp_share": 0.5},
        "dpi": 60,
    })
    truth = planted_truth()
    collected = sweep_records()
    del collected["gemma3-270m"]  # not run
    collected["planted-4l"]["audit"] = audit_metrics("planted-4l", truth.writer, sorted(truth.erasers),
                                                     truth.total_erasure)
    return compare(collected, cp, truth)
