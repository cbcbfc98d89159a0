"""The claims registry and its verification, on synthetic metrics built here (no pipeline run needed).

Synthetic values for quantitative claims are constructed as paper_value + k * step (the paper's rounding for a
claim judged by our interval, its tolerance otherwise), with intervals placed just inside or just outside the
widened paper value, never copied from an output. At the end, generated tests check every claim (and planted
check) against the committed run's metrics (git HEAD, not the workspace, which an applied experiment changes) when
they are of the claim's model, and skip with the reason otherwise.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from erasure.errors import ClaimError, DataError
from erasure.verification.checks import CHECKS
from erasure.verification.claim_schema import is_quantitative
from erasure.verification.metrics import MISSING, Metrics, lookup
from erasure.verification.registry import metric_keys_of, validate_registry
from erasure.verification.regression import regression_report
from erasure.verification.report import render_report_md
from erasure.verification.verify import (
    FAIL,
    NOT_RUN,
    PASS,
    failed_results,
    run_verification,
    verify_claims,
    verify_planted,
)
from synthetic_metrics import (
    ERASERS,
    REGISTRY,
    gelu_metrics,
    judged_by_interval,
    numeric_claims,
    set_claim,
    set_interval,
    set_key,
    synthetic_metrics,
    write_tree,
)

# --------------------------------------------------------------------------------------------------------
# synthetic metrics in the documented shapes (docs/DESIGN.md + the fig4/fig5/aligned/discovery keys)



def gate(report: dict) -> int:
    """The exit code of `python -m scripts.check_claims` for this report."""
    return 1 if failed_results(report) else 0

def statuses(results) -> dict:
    return {r.id: r for r in results}


# --------------------------------------------------------------------------------------------------------
# the registry


def test_every_entry_has_the_required_fields():
    for c in REGISTRY["claims"]:
        for name in ("id", "claim", "section", "figure", "source", "model", "paper_value", "metric", "tolerance",
                     "tolerance_reason"):
            assert name in c, f"{c.get('id')}: {name}"
        assert c["source"] in ("paper", "blog", "artifact")
        assert c["model"] == "gelu-4l"
        assert isinstance(c["tolerance_reason"], str) and len(c["tolerance_reason"]) > 10, c["id"]
        if is_quantitative(c["paper_value"]):
            assert c["rounding"] > 0, c["id"]  # every paper number is printed or read off at some precision
            tol = c["tolerance"]
            assert tol == {"interval": True} or (len({"abs", "rel"} & set(tol)) == 1 and set(tol) <= {"abs", "rel"})
            assert all(v > 0 for k, v in tol.items() if k in ("abs", "rel")), c["id"]
        else:
            assert c.get("check"), f"{c['id']}: a qualitative claim needs a check"
    for p in REGISTRY["planted_checks"]:
        assert p["tolerance_reason"] and (p.get("check") or is_quantitative(p["expected"])), p["id"]


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


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(tolerance={"abs": 0}), "positive"),
    (lambda c: c.update(tolerance={"interval": True, "abs": 0.1}), "not both"),
    (lambda c: c.update(tolerance={"interval": False}), "interval must be true"),
    (lambda c: c.update(tolerance={"truth": "x", "abs": 0.1}), "planted checks only"),
    (lambda c: c.pop("rounding"), "needs `rounding`"),
    (lambda c: c.update(rounding=-0.01), "rounding must be a number >= 0"),
])
def test_a_bad_tolerance_or_rounding_is_rejected(edit, message):
    registry = copy.deepcopy(REGISTRY)
    edit(next(c for c in registry["claims"] if c["id"] == "writer_erased_clean"))
    with pytest.raises(ClaimError, match=message):
        validate_registry(registry)


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["claims"][0].update(source_url="x"), "claim 'writer_absent_before': source_url is not allowed: unknown "
     "key; the known keys are id, claim, section, figure, source, model, paper_value, metric, tolerance, "
     "tolerance_reason, rounding, check"),
    (lambda r: r["claims"][0]["tolerance"].update(level=0.9), "claim 'writer_absent_before': tolerance.level is not "
     "allowed: unknown key; the known keys are abs, rel, truth, interval"),
    (lambda r: r["planted_checks"][0]["check"]["equals"].update(scale=2), "planted check 'planted_discovery_writer': "
     "check.equals.scale is not allowed: unknown key; the known keys are metric, value"),
    (lambda r: r.update(notes="x"), "notes is not allowed: unknown key; the known keys are paper, figure_gaps, claims, "
     "planted_checks"),
    (lambda r: r["claims"][0].update(section=["§3.1"]), "claim 'writer_absent_before': section = ['§3.1'] must be a "
     "non-empty string"),
    (lambda r: r["claims"][0].update(source="preprint"), "claim 'writer_absent_before': source = 'preprint' must be "
     "one of paper, blog, artifact"),
    (lambda r: r["claims"][0]["tolerance"].update(interval="yes"), "claim 'writer_absent_before': tolerance.interval "
     "= 'yes' must be true or false"),
    (lambda r: r["claims"][0].update(metric=["metrics/fig1_resid.json:a"]), "claim 'writer_absent_before': metric = "
     "['metrics/fig1_resid.json:a'] must be `file:dotted.key`, a mapping part -> `file:dotted.key`, or null"),
    (lambda r: r["claims"][0].update(rounding=True), "claim 'writer_absent_before': rounding must be a number >= 0, "
     "got True"),
    (lambda r: r["planted_checks"][3]["tolerance"].update(rel=0.1), "planted check 'planted_eraser_median': tolerance "
     "must have exactly one of abs / rel"),
    (lambda r: r["planted_checks"][3]["expected"].update(factor=2), "planted check 'planted_eraser_median': expected "
     "names the planted truth and allows only the keys truth, key, scale; got factor"),
    (lambda r: r["planted_checks"][0].pop("what"), "planted check 'planted_discovery_writer' lacks the field `what`"),
    (lambda r: r["paper"].update(n_prompts=0), "paper.n_prompts = 0 must be an integer from 1 to 1000000"),
    (lambda r: r["planted_checks"].append(dict(r["planted_checks"][0], id="writer_absent_before")),
     "the registry has the id 'writer_absent_before' twice"),
])
def test_a_bad_entry_is_one_line_naming_the_claim_and_the_key(edit, message):
    registry = copy.deepcopy(REGISTRY)
    edit(registry)
    with pytest.raises(ClaimError) as err:
        validate_registry(registry, "paper/claims.yaml")
    assert str(err.value) == f"paper/claims.yaml: {message}"


@pytest.mark.parametrize("gap, message", [
    ({"claim": "eraser_set", "figure": "fig1_resid_mid2.clean"}, "not a claim with one numeric metric"),
    ({"claim": "writer_erased_clean", "figure": "fig1_resid_mid2.missing"}, "must be a number"),
    ({"claim": "writer_erased_clean"}, "must be {claim: ID, figure: NAME.PART}"),
])
def test_a_bad_figure_gap_is_rejected(gap, message):
    registry = copy.deepcopy(REGISTRY)
    registry["figure_gaps"] = [gap]
    with pytest.raises(ClaimError, match=message):
        validate_registry(registry)


def test_every_claim_metric_key_resolves_in_synthetic_metrics():
    metrics = Metrics(files=synthetic_metrics("gelu-4l"))
    for key in metric_keys_of(REGISTRY, include_planted=False):
        assert metrics.get(key) is not None, key


# --------------------------------------------------------------------------------------------------------
# statuses


def _result(files: dict, claim: dict):
    return statuses(verify_claims(REGISTRY, Metrics(files=files), "gelu-4l"))[claim["id"]]


@pytest.mark.parametrize("k", [0.0, 0.5, -0.5])
def test_every_claim_passes_near_the_paper_value(k):
    # |k| <= 0.5: equal at the printed precision, or (claims sharing a key: the paper's and the blog's median)
    # inside the other's interval
    results = verify_claims(REGISTRY, Metrics(files=gelu_metrics(k)), "gelu-4l")
    failed = {r.id: r.reason for r in results if r.status != PASS}
    assert not failed


INTERVAL_CLAIMS = [c for c in numeric_claims() if judged_by_interval(c)]
TOLERANCE_CLAIMS = [c for c in numeric_claims() if not judged_by_interval(c)]


@pytest.mark.parametrize("claim", INTERVAL_CLAIMS, ids=lambda c: c["id"])
@pytest.mark.parametrize("sign", [1, -1])
def test_equal_at_printed_precision_is_the_strongest_level(claim, sign):
    files = gelu_metrics(0.0)
    tight = 0.05 * claim["rounding"]  # an interval too narrow to reach the paper's value on its own
    set_claim(files, claim, 0.9 * sign, half_width=tight)
    result = _result(files, claim)
    assert (result.status, result.level) == (PASS, "equal"), result.reason
    set_claim(files, claim, 1.1 * sign, half_width=tight)  # just beyond the rounding, the interval too
    result = _result(files, claim)
    assert result.status == FAIL and result.level is None, result
    assert result.diff is not None and result.interval is not None


@pytest.mark.parametrize("claim", INTERVAL_CLAIMS, ids=lambda c: c["id"])
@pytest.mark.parametrize("sign", [1, -1])
def test_inside_the_interval_widened_by_the_rounding_passes(claim, sign):
    """Ours 5 roundings off the paper; the interval's near end 0.9 roundings off it: the rounding reaches it."""
    files = gelu_metrics(0.0)
    for inside in (0.9, 1.1):
        set_claim(files, claim, 5.0 * sign, half_width=0.0)
        parts = claim["paper_value"].items() if isinstance(claim["paper_value"], dict) else [(None, claim["paper_value"])]
        for part, ref in parts:
            key = claim["metric"][part] if part else claim["metric"]
            near, far = ref + sign * inside * claim["rounding"], ref + sign * 6.0 * claim["rounding"]
            set_interval(files, key, min(near, far), max(near, far))
        result = _result(files, claim)
        if inside < 1:
            assert (result.status, result.level) == (PASS, "interval"), result.reason
        else:
            assert result.status == FAIL, result


@pytest.mark.parametrize("claim", INTERVAL_CLAIMS, ids=lambda c: c["id"])
def test_a_claim_without_its_interval_fails(claim):
    files = gelu_metrics(0.0)
    key = claim["metric"] if isinstance(claim["metric"], str) else next(iter(claim["metric"].values()))
    file, dotted = key.split(":", 1)
    node = files[file]
    *path, last = dotted.split(".")
    for part in path:
        node = node[part]
    del node[last + "_high"]
    set_claim_keep = _result(files, claim)
    assert set_claim_keep.status == FAIL and "_high" in set_claim_keep.reason


@pytest.mark.parametrize("claim", TOLERANCE_CLAIMS, ids=lambda c: c["id"])
@pytest.mark.parametrize("k, level", [(0.4, "equal"), (-0.4, "equal"), (0.95, "tolerance"), (-0.95, "tolerance"),
                                      (1.5, None), (-1.5, None)])
def test_a_claim_without_an_interval_is_judged_by_its_tolerance(claim, k, level):
    files = gelu_metrics(0.0)
    set_claim(files, claim, k)  # k tolerances; the rounding (0.005) is half the tolerance (0.01)
    result = _result(files, claim)
    assert result.level == level and result.status == (PASS if level else FAIL), result
    assert result.interval is None


def test_a_claim_takes_its_weakest_part_level():
    claim = next(c for c in REGISTRY["claims"] if c["id"] == "erasure_quartiles")
    files = gelu_metrics(0.0)
    set_claim(files, claim, 0.0, half_width=0.0)
    assert _result(files, claim).level == "equal"
    key = claim["metric"]["q75"]
    set_key(files, key, claim["paper_value"]["q75"] + 0.01)
    set_interval(files, key, claim["paper_value"]["q75"] - 0.01, claim["paper_value"]["q75"] + 0.02)
    result = _result(files, claim)
    assert (result.status, result.level) == (PASS, "interval")
    assert result.interval["q75"] == [claim["paper_value"]["q75"] - 0.01, claim["paper_value"]["q75"] + 0.02]


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


def test_a_null_metric_fails_and_the_report_stays_valid_json(tmp_path):
    """An undefined statistic is written as null (docs/methods.md, "Undefined statistics"): its claim FAILs with
    the reason; the report is strict JSON."""
    files = gelu_metrics(0.0)
    set_key(files, "metrics/fig4_dla.json:paper.r", None)
    write_tree(tmp_path, files, "gelu-4l")
    report = run_verification(tmp_path, {"model": "gelu-4l"}, REGISTRY, None)
    corr = next(r for r in report["claims"] if r["id"] == "dla_corr")
    assert corr["status"] == FAIL and corr["reason"] == "cannot evaluate: metrics/fig4_dla.json:paper.r is null"
    json.loads(json.dumps(report, allow_nan=False))


def test_a_nan_in_a_metrics_file_is_refused_naming_the_file(tmp_path):
    """No writer here writes NaN (strict JSON has none): a file holding one is damaged, and stops verification."""
    files = gelu_metrics(0.0)
    set_key(files, "metrics/fig4_dla.json:paper.r", float("nan"))
    write_tree(tmp_path, files, "gelu-4l")
    with pytest.raises(DataError, match=r"metrics/fig4_dla\.json holds NaN \(not JSON"):
        run_verification(tmp_path, {"model": "gelu-4l"}, REGISTRY, None)


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
    """The documented fields of erasure.planted_truth.PlantedTruth."""

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


def test_report_on_planted_checks_the_truth_and_not_the_paper(tmp_path):
    truth = FakeTruth()
    write_tree(tmp_path, planted_files(truth), "planted-4l")
    report = run_verification(tmp_path, {"model": "planted-4l"}, REGISTRY, lambda: truth)
    assert report["summary"]["claims"]["not_run"] == len(REGISTRY["claims"])
    failed = {r["id"]: r["reason"] for r in report["planted"] if r["status"] != PASS}
    assert not failed
    ids = {r["id"] for r in report["planted"]}
    assert {f"planted_eraser_median[{h}]" for h in truth.erasers} <= ids
    assert report["ok"] and gate(report) == 0
    # the truth's own tolerance is the one applied
    eraser = next(r for r in report["planted"] if r["id"] == "planted_eraser_median[L2H5]")
    assert "eraser_pr" in eraser["details"][0]["detail"]
    # provenance: stage from dvc.yaml, md5 from dvc.lock
    fig1 = next(r for r in report["planted"] if r["id"] == "planted_resid_clean")
    assert fig1["files"][0]["stage"] == "fig1_resid" and fig1["files"][0]["lock_matches"] is True
    md = render_report_md(report)
    assert "planted_eraser_sum" in md and "NOT RUN" in md


@pytest.mark.parametrize("measured, interval, level", [
    (-0.165, (-0.17, -0.155), "interval"),  # the truth -0.16 is inside our interval
    (-0.175, (-0.18, -0.17), "tolerance"),  # outside the interval, within the truth's tolerance 0.02
    (-0.185, (-0.19, -0.18), None),  # outside both
])
def test_planted_checks_report_whether_sampling_explains_the_gap(measured, interval, level):
    truth = FakeTruth()  # L2H5: f = 0.16, tolerance eraser_pr = 0.02
    files = planted_files(truth)
    key = "metrics/fig2_components.json:components.L2H5.all.median"
    set_key(files, key, measured)
    set_interval(files, key, *interval)
    results = statuses(verify_planted(REGISTRY, Metrics(files=files), truth, "planted-4l"))
    result = results["planted_eraser_median[L2H5]"]
    assert result.level == level and result.status == (PASS if level else FAIL)
    assert result.interval == list(interval)


def test_a_planted_failure_exits_non_zero(tmp_path):
    truth = FakeTruth()
    files = planted_files(truth)
    key, moved = "metrics/fig2_components.json:components.L2H5.all.median", -truth.erasers["L2H5"] - 0.05
    set_key(files, key, moved)
    set_interval(files, key, moved - 0.01, moved + 0.01)  # the truth is outside both interval and tolerance
    write_tree(tmp_path, files, "planted-4l")
    report = run_verification(tmp_path, {"model": "planted-4l"}, REGISTRY, lambda: truth)
    bad = [r["id"] for r in report["planted"] if r["status"] == FAIL]
    assert bad == ["planted_eraser_median[L2H5]"]
    assert gate(report) == 1


def test_a_planted_truth_that_cannot_load_fails_the_planted_checks(tmp_path):
    write_tree(tmp_path, planted_files(FakeTruth()), "planted-4l")

    def broken():
        raise ImportError("no module erasure.models.planted")
    report = run_verification(tmp_path, {"model": "planted-4l"}, REGISTRY, broken)
    assert report["planted"] and all(r["status"] == FAIL for r in report["planted"])
    assert "no module" in report["planted"][0]["reason"] and gate(report) == 1


def test_smollm2_checks_nothing_against_the_paper(tmp_path):
    write_tree(tmp_path, synthetic_metrics("smollm2-135m", writer="L3H4"), "smollm2-135m")
    report = run_verification(tmp_path, {"model": "smollm2-135m"}, REGISTRY, None)
    assert {r["status"] for r in report["claims"]} == {NOT_RUN}
    assert report["planted"] == [] and gate(report) == 0
    assert "nothing is checked against the paper" in report["note"]
    assert "nothing is checked against the paper" in render_report_md(report)


def test_gelu_report_and_exit_code(tmp_path):
    write_tree(tmp_path, gelu_metrics(0.3), "gelu-4l")
    report = run_verification(tmp_path, {"model": "gelu-4l"}, REGISTRY, None)
    assert report["summary"]["claims"]["pass"] == len(REGISTRY["claims"]) and gate(report) == 0
    files = gelu_metrics(0.3)
    set_claim(files, next(c for c in REGISTRY["claims"] if c["id"] == "dla_slope"), 3.0, half_width=0.0)
    write_tree(tmp_path, files, "gelu-4l")
    report = run_verification(tmp_path, {"model": "gelu-4l"}, REGISTRY, None)
    assert [r["id"] for r in report["claims"] if r["status"] == FAIL] == ["dla_slope"]
    assert gate(report) == 1
    row = next(line for line in render_report_md(report).splitlines() if line.startswith("| dla_slope"))
    assert "FAIL" in row and "fig4_dla" in row


def test_report_shows_paper_ours_interval_and_verdict_per_claim(tmp_path):
    files = gelu_metrics(0.0)
    claim = next(c for c in REGISTRY["claims"] if c["id"] == "writer_erased_clean")
    set_claim(files, claim, 4.0, half_width=0.0)  # ours 0.14
    set_interval(files, claim["metric"], 0.1245, 0.16)  # 0.12 + 0.005 reaches 0.1245
    write_tree(tmp_path, files, "gelu-4l")
    report = run_verification(tmp_path, {"model": "gelu-4l"}, REGISTRY, None)
    assert report["summary"]["claims"]["levels"]["interval"] >= 1
    assert report["bootstrap"]["metrics/fig1_resid.json"]["level"] == 0.95
    md = render_report_md(report)
    row = next(line for line in md.splitlines() if line.startswith("| writer_erased_clean"))
    cells = [c.strip() for c in row.split(" | ")]
    assert cells[2:7] == ["0.12", "0.14", "[0.1245, 0.16]", "printed ±0.005; interval", "PASS: inside our interval"]
    adv = next(line for line in md.splitlines() if line.startswith("| adv_p1"))
    assert "printed ±0.005; ±0.01" in adv and "PASS: equal at printed precision" in adv
    assert "95% percentile bootstrap resampling each prompt (1000 draws, seed 0)" in md
    set_interval(files, claim["metric"], 0.1255, 0.16)  # now 0.12 + 0.005 falls short of it
    write_tree(tmp_path, files, "gelu-4l")
    report = run_verification(tmp_path, {"model": "gelu-4l"}, REGISTRY, None)
    row = next(line for line in render_report_md(report).splitlines() if line.startswith("| writer_erased_clean"))
    assert "FAIL" in row and gate(report) == 1


def _gap(report: dict, claim: str) -> dict:
    return next(g for g in report["figure_gaps"] if g["claim"] == claim)


@pytest.mark.parametrize("half_width, status", [(0.02, "within noise"), (0.002, "beyond noise")])
def test_paper_vs_authors_figure_gap_against_sampling_noise(tmp_path, half_width, status):
    """0.12 vs 0.10: noise bound = 1.96 x sqrt(2) x se_300 + 2 x 0.005, se_300 = our se x sqrt(n_ours / 300)."""
    files = gelu_metrics(0.0)
    set_key(files, "metrics/fig1_resid.json:n_prompts", 75)  # 300 / 75 = 4: se_300 = se_ours / 2
    set_interval(files, "metrics/fig1_resid.json:checkpoints.resid_mid2.clean.all.median", 0.12 - half_width,
                 0.12 + half_width)
    write_tree(tmp_path, files, "gelu-4l")
    gap = _gap(run_verification(tmp_path, {"model": "gelu-4l"}, REGISTRY, None), "writer_erased_clean")
    z = 1.959963984540054  # the normal quantile of 0.975
    expected = z * 2 ** 0.5 * (half_width / z) / 2 + 0.01  # se_ours = half_width / z
    assert gap["noise"] == pytest.approx(expected, rel=1e-9)
    assert (gap["paper_value"], gap["figure_value"], gap["n_paper"], gap["n_figure"]) == (0.12, 0.10, 300, 300)
    assert gap["gap"] == pytest.approx(0.02) and gap["status"] == status
    assert "The paper vs the authors' committed figure" in render_report_md(
        run_verification(tmp_path, {"model": "gelu-4l"}, REGISTRY, None))


def test_the_figure_gap_is_not_run_on_another_model(tmp_path):
    write_tree(tmp_path, synthetic_metrics("planted-4l"), "planted-4l")
    report = run_verification(tmp_path, {"model": "planted-4l"}, REGISTRY, None)
    assert {g["status"] for g in report["figure_gaps"]} == {"NOT RUN"}
    assert "our spread is planted-4l's" in _gap(report, "writer_kept_patched")["reason"]


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
# generated: every claim against the real metrics of the committed run (git HEAD), when they are of its model


def _real_model(root: Path, entry_files: list[str]) -> str | None:
    for f in entry_files:
        path = root / f
        if path.exists():
            try:
                return json.loads(path.read_text()).get("model")
            except json.JSONDecodeError:
                return None
    return None


def _files_of(entry: dict) -> list[str]:
    from erasure.verification.registry import entry_files
    return entry_files(entry)


@pytest.mark.parametrize("claim", REGISTRY["claims"], ids=lambda c: c["id"])
def test_claim_against_real_metrics(claim, committed):
    files = _files_of(claim)
    model = _real_model(committed, files)
    if model is None:
        pytest.skip(f"not run: no committed metrics in {', '.join(files) or 'metrics/'}")
    if model != claim["model"]:
        pytest.skip(f"not run: the committed metrics are from {model}")
    result = verify_claims({"claims": [claim]}, Metrics(committed), model)[0]
    assert result.status == PASS, f"{claim['id']}: {result.reason}"


@pytest.mark.parametrize("claim", numeric_claims(), ids=lambda c: c["id"])
def test_only_claims_without_an_interval_in_real_metrics_have_a_tolerance(claim, committed):
    """The judgement tolerance is kept only where the pipeline produces no sampling interval."""
    keys = list(claim["metric"].values()) if isinstance(claim["metric"], dict) else [claim["metric"]]
    if _real_model(committed, _files_of(claim)) is None:
        pytest.skip(f"not run: no committed metrics in {', '.join(_files_of(claim))}")
    metrics = Metrics(committed)
    has_interval = {lookup(metrics.file(k.split(":")[0]), k.split(":", 1)[1] + "_low") is not MISSING for k in keys}
    assert has_interval == {judged_by_interval(claim)}, claim["id"]


@pytest.mark.parametrize("check", REGISTRY["planted_checks"], ids=lambda c: c["id"])
def test_planted_check_against_real_metrics(check, committed):
    files = _files_of(check)
    model = _real_model(committed, files)
    if model is None:
        pytest.skip(f"not run: no committed metrics in {', '.join(files) or 'metrics/'}")
    if model != "planted-4l":
        pytest.skip(f"not run: the committed metrics are from {model}")
    from erasure.planted_truth import planted_truth
    results = verify_planted({"planted_checks": [check]}, Metrics(committed), planted_truth(), "planted-4l")
    failed = {r.id: r.reason for r in results if r.status != PASS}
    assert not failed


def test_regression_tolerance_applies_inside_lists_and_mappings():
    from erasure.verification.regression import regression_compare

    tol = (1e-4, 1e-4)
    assert regression_compare(0.5, 0.50005, *tol)[0] and not regression_compare(0.5, 0.5002, *tol)[0]
    old = [{"token": " bottom", "score": 0.40}, {"token": " State", "score": 0.34}]
    assert regression_compare([{"token": " bottom", "score": 0.40003}, {"token": " State", "score": 0.34}], old, *tol)[0]
    moved, why = regression_compare([{"token": " bottom", "score": 0.41}, {"token": " State", "score": 0.34}], old, *tol)
    assert not moved and why.startswith("[0] [score]")
    assert not regression_compare([{"token": " top", "score": 0.40}, old[1]], old, *tol)[0]
    assert not regression_compare(["L2H2"], ["L2H2", "L2H3"], *tol)[0]
