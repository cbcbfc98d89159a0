"""The claims registry and its verification, on synthetic metrics built here (no pipeline run needed).

Synthetic values for quantitative claims are constructed as paper_value + k * tolerance, never copied from an
output. At the end, generated tests check every claim (and planted check) against real metrics in metrics/ when a
run has produced them, and skip with the reason otherwise.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from erasure.claims import (
    CHECKS, FAIL, NOT_RUN, PASS, ClaimError, Metrics, _is_quantitative, exit_code,
    load_claims, lookup, metric_keys_of, regression_report, render_report_md, run_verification, validate_registry,
    verify_claims, verify_planted,
)

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = load_claims(ROOT / "paper/claims.yaml")
CLAIMS_MD = ROOT.parent / "shared" / "paper-claims.md"
ERASERS = ["L2H2", "L2H3", "L2H4", "L2H5", "L2H6", "L2H7"]
CHECKPOINTS = ["resid_pre0"] + [f"resid_{k}{i}" for i in range(4) for k in ("mid", "post")]


# --------------------------------------------------------------------------------------------------------
# synthetic metrics in the documented shapes (docs/DESIGN.md + the fig4/fig5/aligned/discovery keys)


def stats(median: float, spread: float = 0.1) -> dict:
    return {"median": median, "q25": median - spread, "q75": median + spread, "q12_5": median - 2 * spread,
            "q87_5": median + 2 * spread, "mean": median, "n": 1000}


def pools(median: float, spread: float = 0.1) -> dict:
    return {"all": stats(median, spread), "no_bos": stats(median, spread)}


def synthetic_metrics(model: str = "gelu-4l", writer: str = "L0H2", erasers: dict | None = None,
                      token_head: str = "L3H1") -> dict:
    """A full set of metrics files that satisfies every qualitative rule; quantitative values set separately."""
    erasers = erasers or {"L2H2": 0.145, "L2H3": 0.035, "L2H4": 0.12, "L2H5": 0.26, "L2H6": 0.175, "L2H7": 0.14}
    total = sum(erasers.values())
    head = {"model": model, "writer": writer, "erasers": list(erasers), "n_prompts": 30, "seq_len": 64}
    clean = [0.0, 1.0, 1.0, 1.0, 1.0, 1.0 - total, 0.09, 0.05, 0.05]
    patched = [0.0, 1.0, 1.0, 1.0, 1.0, 0.91, 0.65, 0.57, 0.48]
    fig1 = {**head, "checkpoints": {c: {"clean": pools(a), "patched": pools(b)}
                                    for c, a, b in zip(CHECKPOINTS, clean, patched)},
            "erasure_checkpoint": "resid_mid2", "entering_checkpoint": "resid_post1",
            "vcomp_share": {"all": 0.85, "no_bos": 0.86}}
    comps = [f"L{l}H{h}" for l in range(4) for h in range(8)] + [f"MLP{l}" for l in range(4)]
    components = {}
    for c in comps:
        if c == writer:
            continue
        f = erasers.get(c)
        components[c] = pools(-f, min(0.1, f / 2)) if f else pools(0.0, 0.05)
    fig2 = {**head, "components": components, "eraser_sum": pools(-total, 0.2),
            "erasure_total_pct": {"all": 100 * total, "no_bos": 100 * total},
            "negative_median_threshold": 0.02, "negative_heads": list(erasers)}
    fig3 = {**head, "heads": {f"L2H{h}": {"clean": pools(-erasers.get(f"L2H{h}", 0.0) or 0.0,
                                                         min(0.1, erasers.get(f"L2H{h}", 0.2) / 2)),
                                          "patched": pools(0.005, 0.1)} for h in range(8)}}
    fit = {"r": -0.7, "slope": -0.6, "intercept": 0.0, "r_ci95": [-0.75, -0.65], "slope_ci95": [-0.65, -0.55],
           "intercept_ci95": [-0.01, 0.01], "n_points": 30 * 64, "n_prompts": 30, "positions": "all"}
    fig4 = {**head, "paper": fit, "full_erasers": {"r": -0.16, "slope": -0.1, "intercept": 0.0},
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
                      "comparison_head": comparison[p], "auto_head": "L3H0"}
    fig5 = {"model": model, "prompts": prompts}
    tokens = [" bottom", " State", " __", " Church"] + [f" tok{i}" for i in range(16)]
    aligned = {"model": model, "top": [{"token": t, "score": 1.0 - i / 40} for i, t in enumerate(tokens)]}
    discovery = {"model": model, "selected": {"writer": writer, "erasers": list(erasers)}, "rediscovered": True}
    return {"metrics/fig1_resid.json": fig1, "metrics/fig2_components.json": fig2, "metrics/fig3_heads.json": fig3,
            "metrics/fig4_dla.json": fig4, "metrics/fig5_adversarial.json": fig5,
            "metrics/aligned_tokens.json": aligned, "metrics/discovery.json": discovery}


def set_key(files: dict, key: str, value) -> None:
    file, dotted = key.split(":", 1)
    node = files[file]
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def numeric_claims() -> list[dict]:
    return [c for c in REGISTRY["claims"] if _is_quantitative(c["paper_value"])]


def offset(paper_value: float, tol: dict, k: float) -> float:
    """paper_value + k tolerances (absolute, or relative to |paper_value|)."""
    step = tol["abs"] if "abs" in tol else tol["rel"] * abs(paper_value)
    return paper_value + k * step


def set_claim(files: dict, claim: dict, k: float) -> None:
    value, metric, tol = claim["paper_value"], claim["metric"], claim["tolerance"]
    if isinstance(value, dict):
        for part, ref in value.items():
            set_key(files, metric[part], offset(ref, tol, k))
    else:
        set_key(files, metric, offset(value, tol, k))


def gelu_metrics(k: float) -> dict:
    """Synthetic gelu-4l metrics with every quantitative claim at paper_value + k tolerances."""
    files = synthetic_metrics("gelu-4l")
    for claim in numeric_claims():
        set_claim(files, claim, k)
    return files


def statuses(results) -> dict:
    return {r.id: r for r in results}


# --------------------------------------------------------------------------------------------------------
# the registry


def paper_claim_ids() -> list[str]:
    ids = []
    for line in CLAIMS_MD.read_text().splitlines():
        match = re.match(r"^\|\s*([a-z][a-z0-9_]*)\s*\|", line)
        if match and match.group(1) != "id":
            ids.append(match.group(1))
    return ids


@pytest.mark.skipif(not CLAIMS_MD.exists(), reason=f"{CLAIMS_MD} not present beside the checkout")
def test_every_row_of_paper_claims_has_an_entry():
    ids = paper_claim_ids()
    assert len(ids) >= 20, "the claims table of paper-claims.md did not parse"
    registry_ids = {c["id"] for c in REGISTRY["claims"] if c["source"] != "artifact"}
    assert not set(ids) - registry_ids, f"rows without a claims.yaml entry: {sorted(set(ids) - registry_ids)}"
    assert not registry_ids - set(ids), f"entries that are not a row: {sorted(registry_ids - set(ids))}"


def test_every_entry_has_the_required_fields():
    for c in REGISTRY["claims"]:
        for name in ("id", "claim", "section", "figure", "source", "model", "paper_value", "metric", "tolerance",
                     "tolerance_reason"):
            assert name in c, f"{c.get('id')}: {name}"
        assert c["source"] in ("paper", "blog", "artifact")
        assert c["model"] == "gelu-4l"
        assert isinstance(c["tolerance_reason"], str) and len(c["tolerance_reason"]) > 10, c["id"]
        if _is_quantitative(c["paper_value"]):
            assert isinstance(c["tolerance"], dict) and len({"abs", "rel"} & set(c["tolerance"])) == 1, c["id"]
            assert all(v > 0 for k, v in c["tolerance"].items() if k in ("abs", "rel")), c["id"]
        else:
            assert c.get("check"), f"{c['id']}: a qualitative claim needs a check"
    for p in REGISTRY["planted_checks"]:
        assert p["tolerance_reason"] and (p.get("check") or _is_quantitative(p["expected"])), p["id"]


def test_only_known_check_kinds_are_used():
    kinds = set()
    for entry in REGISTRY["claims"] + REGISTRY["planted_checks"]:
        checks = entry.get("check") or []
        for check in checks if isinstance(checks, list) else [checks]:
            kinds |= set(check)
    assert kinds <= set(CHECKS)


@pytest.mark.parametrize("bad, message", [
    ({"nonsense": {"metric": "metrics/x.json:a", "value": 1}}, "unknown check kind"),
    ({"less_than": {"metric": "metrics/x.json:a"}}, "exactly one of value / than"),
    ({"within": {"metric": "metrics/x.json:a", "value": 1, "abs": -1}}, "positive"),
    ({"equals": {"metric": "no-colon", "value": 1}}, "file:dotted.key"),
])
def test_malformed_checks_are_rejected(bad, message):
    registry = copy.deepcopy(REGISTRY)
    registry["claims"][0]["check"] = bad
    with pytest.raises(ClaimError, match=message):
        validate_registry(registry)


def test_a_zero_tolerance_is_rejected():
    registry = copy.deepcopy(REGISTRY)
    registry["claims"][0]["tolerance"] = {"abs": 0}
    with pytest.raises(ClaimError, match="positive"):
        validate_registry(registry)


def test_every_claim_metric_key_resolves_in_synthetic_metrics():
    metrics = Metrics(files=synthetic_metrics("gelu-4l"))
    for key in metric_keys_of(REGISTRY, include_planted=False):
        assert metrics.get(key) is not None, key


# --------------------------------------------------------------------------------------------------------
# statuses


@pytest.mark.parametrize("k", [0.0, 0.5, -0.5])
def test_within_tolerance_passes(k):
    # |k| <= 0.5 for all claims at once: erasure_median_blog and erasure_quartiles share a key (the median)
    results = verify_claims(REGISTRY, Metrics(files=gelu_metrics(k)), "gelu-4l")
    failed = {r.id: r.reason for r in results if r.status != PASS}
    assert not failed


@pytest.mark.parametrize("claim", numeric_claims(), ids=lambda c: c["id"])
@pytest.mark.parametrize("k", [0.95, -0.95])
def test_just_inside_tolerance_passes(claim, k):
    files = gelu_metrics(0.0)
    set_claim(files, claim, k)
    result = statuses(verify_claims(REGISTRY, Metrics(files=files), "gelu-4l"))[claim["id"]]
    assert result.status == PASS, result.reason


@pytest.mark.parametrize("claim", numeric_claims(), ids=lambda c: c["id"])
@pytest.mark.parametrize("k", [1.5, -1.5])
def test_out_of_tolerance_fails(claim, k):
    files = gelu_metrics(0.0)
    set_claim(files, claim, k)
    result = statuses(verify_claims(REGISTRY, Metrics(files=files), "gelu-4l"))[claim["id"]]
    assert result.status == FAIL, result
    assert result.diff is not None


def _break(files: dict, what: str) -> str:
    """Make one qualitative rule fail; returns the claim id expected to FAIL."""
    f1, f2, f3, f5 = (files[f"metrics/{n}.json"] for n in ("fig1_resid", "fig2_components", "fig3_heads",
                                                           "fig5_adversarial"))
    if what == "later_layers_erase_too":
        f1["checkpoints"]["resid_post3"]["patched"]["all"]["median"] = 0.95
    elif what == "eraser_set":
        f2["negative_heads"] = ERASERS[:-1] + ["L2H1"]
    elif what == "erasers_vanish_patched":
        f3["heads"]["L2H5"]["patched"]["all"]["median"] = -0.2
    elif what == "aligned_tokens":
        files["metrics/aligned_tokens.json"]["top"][1]["token"] = " Ohio"
    elif what == "adv_p1":
        f5["prompts"]["p1"]["top2"] = [" top", " bottom"]
    elif what == "adv_writer_invariant":
        f5["prompts"]["p3"]["heads"]["L0H2"]["resampled"]["median"] = 0.3
    elif what == "adv_others_drop":
        comp = f5["prompts"]["p2"]["comparison_head"]
        f5["prompts"]["p2"]["heads"][comp]["resampled"]["median"] = 0.9
    elif what == "fig_band_convention":
        del f2["eraser_sum"]["all"]["q12_5"]
    return what


@pytest.mark.parametrize("what", ["later_layers_erase_too", "eraser_set", "erasers_vanish_patched", "aligned_tokens",
                                  "adv_p1", "adv_writer_invariant", "adv_others_drop", "fig_band_convention"])
def test_a_broken_qualitative_rule_fails(what):
    files = gelu_metrics(0.0)
    cid = _break(files, what)
    results = statuses(verify_claims(REGISTRY, Metrics(files=files), "gelu-4l"))
    assert results[cid].status == FAIL, results[cid]
    assert sum(r.status == FAIL for r in results.values()) == 1


def test_gelu_claims_on_planted_metrics_are_not_run_never_pass():
    files = synthetic_metrics("planted-4l")
    for claim in numeric_claims():  # even values equal to the paper's must not PASS on another model
        set_claim(files, claim, 0.0)
    results = verify_claims(REGISTRY, Metrics(files=files), "planted-4l")
    assert {r.status for r in results} == {NOT_RUN}
    assert all("metrics are from planted-4l; this claim is about gelu-4l" in r.reason for r in results)


def test_stale_metrics_from_another_model_fail_a_gelu_run():
    results = verify_claims(REGISTRY, Metrics(files=synthetic_metrics("planted-4l")), "gelu-4l")
    assert all(r.status == FAIL and "stale" in r.reason for r in results)


def test_a_nan_metric_fails_and_the_report_stays_valid_json(tmp_path):
    files = gelu_metrics(0.0)
    set_key(files, "metrics/fig4_dla.json:paper.r", float("nan"))
    write_tree(tmp_path, files, "gelu-4l")
    report = run_verification(tmp_path, {"model": "gelu-4l"}, REGISTRY, None)
    corr = next(r for r in report["claims"] if r["id"] == "dla_corr")
    assert corr["status"] == FAIL and "not a finite number" in corr["reason"]
    json.loads(json.dumps(report, allow_nan=False))


def test_a_missing_metric_fails_a_gelu_run_with_the_reason():
    files = gelu_metrics(0.0)
    del files["metrics/fig4_dla.json"]
    results = statuses(verify_claims(REGISTRY, Metrics(files=files), "gelu-4l"))
    assert results["dla_corr"].status == FAIL and "does not exist" in results["dla_corr"].reason
    assert results["writer_erased_clean"].status == PASS


# --------------------------------------------------------------------------------------------------------
# the whole report, provenance, planted truth, smollm2


@dataclass(frozen=True)
class FakeTruth:
    """The documented fields of erasure.planted.PlantedTruth."""

    writer: str = "L0H2"
    erasers: dict = field(default_factory=lambda: {"L2H2": 0.1, "L2H3": 0.12, "L2H4": 0.14, "L2H5": 0.16,
                                                   "L2H6": 0.17, "L2H7": 0.18})
    total_erasure: float = 0.87
    resid_after_erasure: float = 0.13
    resid_after_erasure_patched: float = 1.0
    token_head: str = "L3H1"
    tolerances: dict = field(default_factory=lambda: {"eraser_pr": 0.02, "total_erasure": 0.04, "dla_slope": 0.05})
    tolerance_reasons: dict = field(default_factory=dict)


def planted_files(truth: FakeTruth) -> dict:
    files = synthetic_metrics("planted-4l", truth.writer, dict(truth.erasers), truth.token_head)
    set_key(files, "metrics/fig1_resid.json:checkpoints.resid_mid2.patched.all.median", 0.99)
    set_key(files, "metrics/fig4_dla.json:paper.slope", -0.86)
    set_key(files, "metrics/fig4_dla.json:paper.r", -0.99)
    for h in truth.erasers:
        set_key(files, f"metrics/fig3_heads.json:heads.{h}.patched.all.median", 0.001)
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


def test_report_on_planted_checks_the_truth_and_not_the_paper(tmp_path):
    truth = FakeTruth()
    write_tree(tmp_path, planted_files(truth), "planted-4l")
    report = run_verification(tmp_path, {"model": "planted-4l"}, REGISTRY, lambda: truth)
    assert report["summary"]["claims"]["not_run"] == len(REGISTRY["claims"])
    failed = {r["id"]: r["reason"] for r in report["planted"] if r["status"] != PASS}
    assert not failed
    ids = {r["id"] for r in report["planted"]}
    assert {f"planted_eraser_median[{h}]" for h in truth.erasers} <= ids
    assert report["ok"] and exit_code(report) == 0
    # the truth's own tolerance is the one applied
    eraser = next(r for r in report["planted"] if r["id"] == "planted_eraser_median[L2H5]")
    assert "eraser_pr" in eraser["details"][0]["detail"]
    # provenance: stage from dvc.yaml, md5 from dvc.lock
    fig1 = next(r for r in report["planted"] if r["id"] == "planted_resid_clean")
    assert fig1["files"][0]["stage"] == "fig1_resid" and fig1["files"][0]["lock_matches"] is True
    md = render_report_md(report)
    assert "planted_eraser_sum" in md and "NOT RUN" in md


def test_a_planted_failure_exits_non_zero(tmp_path):
    truth = FakeTruth()
    files = planted_files(truth)
    set_key(files, "metrics/fig2_components.json:components.L2H5.all.median", -truth.erasers["L2H5"] - 0.05)
    write_tree(tmp_path, files, "planted-4l")
    report = run_verification(tmp_path, {"model": "planted-4l"}, REGISTRY, lambda: truth)
    bad = [r["id"] for r in report["planted"] if r["status"] == FAIL]
    assert bad == ["planted_eraser_median[L2H5]"]
    assert exit_code(report) == 1 and exit_code(report, strict=False) == 0


def test_a_planted_truth_that_cannot_load_fails_the_planted_checks(tmp_path):
    write_tree(tmp_path, planted_files(FakeTruth()), "planted-4l")

    def broken():
        raise ImportError("no module erasure.planted")
    report = run_verification(tmp_path, {"model": "planted-4l"}, REGISTRY, broken)
    assert report["planted"] and all(r["status"] == FAIL for r in report["planted"])
    assert "no module" in report["planted"][0]["reason"] and exit_code(report) == 1


def test_smollm2_checks_nothing_against_the_paper(tmp_path):
    write_tree(tmp_path, synthetic_metrics("smollm2-135m", writer="L3H4"), "smollm2-135m")
    report = run_verification(tmp_path, {"model": "smollm2-135m"}, REGISTRY, None)
    assert {r["status"] for r in report["claims"]} == {NOT_RUN}
    assert report["planted"] == [] and exit_code(report) == 0
    assert "nothing is checked against the paper" in report["note"]
    assert "nothing is checked against the paper" in render_report_md(report)


def test_gelu_report_and_exit_code(tmp_path):
    write_tree(tmp_path, gelu_metrics(0.3), "gelu-4l")
    report = run_verification(tmp_path, {"model": "gelu-4l"}, REGISTRY, None)
    assert report["summary"]["claims"]["pass"] == len(REGISTRY["claims"]) and exit_code(report) == 0
    files = gelu_metrics(0.3)
    set_claim(files, next(c for c in REGISTRY["claims"] if c["id"] == "dla_slope"), 3.0)
    write_tree(tmp_path, files, "gelu-4l")
    report = run_verification(tmp_path, {"model": "gelu-4l"}, REGISTRY, None)
    assert [r["id"] for r in report["claims"] if r["status"] == FAIL] == ["dla_slope"]
    assert exit_code(report) == 1
    row = next(line for line in render_report_md(report).splitlines() if line.startswith("| dla_slope"))
    assert "FAIL" in row and "fig4_dla" in row


# --------------------------------------------------------------------------------------------------------
# regression


def test_regression_flags_only_moves_beyond_tolerance():
    new = gelu_metrics(0.2)
    old = copy.deepcopy(new)
    metrics = Metrics(files=new)
    ref = Metrics(files=old)

    def old_value(file, dotted):
        return lookup(ref.file(file) or {}, dotted)
    report = regression_report(REGISTRY, metrics, old_value, 1e-4, 1e-4)
    assert report["ok"] and report["checked"] > 50
    set_key(new, "metrics/fig4_dla.json:paper.r", old["metrics/fig4_dla.json"]["paper"]["r"] + 5e-5)
    assert regression_report(REGISTRY, metrics, old_value, 1e-4, 1e-4)["ok"]
    set_key(new, "metrics/fig4_dla.json:paper.r", old["metrics/fig4_dla.json"]["paper"]["r"] + 1e-3)
    set_key(new, "metrics/fig5_adversarial.json:prompts.p2.top2", [" University", " State"])
    moved = regression_report(REGISTRY, metrics, old_value, 1e-4, 1e-4)["moved"]
    assert len(moved) == 2 and any("paper.r" in m for m in moved) and any("p2.top2" in m for m in moved)


# --------------------------------------------------------------------------------------------------------
# generated: every claim against the real metrics of the last run, when there is one


def _real_model(entry_files: list[str]) -> str | None:
    for f in entry_files:
        path = ROOT / f
        if path.exists():
            try:
                return json.loads(path.read_text()).get("model")
            except json.JSONDecodeError:
                return None
    return None


def _files_of(entry: dict) -> list[str]:
    from erasure.claims import entry_files
    return entry_files(entry)


@pytest.mark.parametrize("claim", REGISTRY["claims"], ids=lambda c: c["id"])
def test_claim_against_real_metrics(claim):
    files = _files_of(claim)
    model = _real_model(files)
    if model is None:
        pytest.skip(f"not run: no metrics from a run in {', '.join(files) or 'metrics/'}")
    if model != claim["model"]:
        pytest.skip(f"not run: metrics are from {model}")
    result = verify_claims({"claims": [claim]}, Metrics(ROOT), model)[0]
    assert result.status == PASS, f"{claim['id']}: {result.reason}"


@pytest.mark.parametrize("check", REGISTRY["planted_checks"], ids=lambda c: c["id"])
def test_planted_check_against_real_metrics(check):
    files = _files_of(check)
    model = _real_model(files)
    if model is None:
        pytest.skip(f"not run: no metrics from a run in {', '.join(files) or 'metrics/'}")
    if model != "planted-4l":
        pytest.skip(f"not run: metrics are from {model}")
    from erasure.planted import planted_truth
    results = verify_planted({"planted_checks": [check]}, Metrics(ROOT), planted_truth(), "planted-4l")
    failed = {r.id: r.reason for r in results if r.status != PASS}
    assert not failed


def test_regression_tolerance_applies_inside_lists_and_mappings():
    from erasure.claims import regression_compare

    tol = (1e-4, 1e-4)
    assert regression_compare(0.5, 0.50005, *tol)[0] and not regression_compare(0.5, 0.5002, *tol)[0]
    old = [{"token": " bottom", "score": 0.40}, {"token": " State", "score": 0.34}]
    assert regression_compare([{"token": " bottom", "score": 0.40003}, {"token": " State", "score": 0.34}], old, *tol)[0]
    moved, why = regression_compare([{"token": " bottom", "score": 0.41}, {"token": " State", "score": 0.34}], old, *tol)
    assert not moved and why.startswith("[0] [score]")
    assert not regression_compare([{"token": " top", "score": 0.40}, old[1]], old, *tol)[0]
    assert not regression_compare(["L2H2"], ["L2H2", "L2H3"], *tol)[0]
