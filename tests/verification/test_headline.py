"""metrics/headline/: one row per claim (per part, per planted check) with the measured value, the interval when the
metrics hold one, and the verdict; the counts. Checked on synthetic metrics against the metrics and the report."""
from __future__ import annotations

import synthetic_metrics as tc
from erasure.verification.headline import headline_rows
from erasure.verification.metrics import Metrics
from erasure.verification.verify import run_verification


def _rows(root, files: dict, model: str = "gelu-4l") -> tuple[dict, dict]:
    """The headline of a verification run over `files` written under root."""
    tc.write_tree(root, files, model)
    report = run_verification(root, {"model": model}, tc.REGISTRY, None)
    return headline_rows(report, tc.REGISTRY, Metrics(root)), report


def test_every_claim_has_a_row_with_its_metric_and_verdict(tmp_path):
    files = tc.gelu_metrics(0.5)
    rows, report = _rows(tmp_path, files)
    status = {r["id"]: r["status"] for r in report["claims"]}
    metrics = Metrics(files=files)
    for claim in tc.REGISTRY["claims"]:
        metric = claim["metric"]
        parts = metric.items() if isinstance(metric, dict) else [(None, metric)]
        for part, key in parts:
            row = rows[claim["id"] if part is None else f"{claim['id']}.{part}"]
            assert row["status"] == status[claim["id"]]
            value = metrics.get(key) if key else None
            if isinstance(value, (int, float, str)):
                assert row["value"] == value, (claim["id"], part)
            else:  # lists and rule-only claims: dvc metrics cannot show them
                assert "value" not in row, claim["id"]
    assert rows["_claims"] == {k: report["summary"]["claims"][k] for k in ("pass", "fail", "not_run")}
    assert "_planted" not in rows  # no planted checks on gelu-4l


def test_a_claim_outside_its_tolerance_shows_fail_and_the_value(tmp_path):
    files = tc.gelu_metrics(0.0)
    key = "metrics/fig1_resid.json:checkpoints.resid_mid2.clean.all.median"
    tc.set_key(files, key, 0.2)
    tc.set_interval(files, key, 0.19, 0.21)  # the paper's 0.12 (± 0.005) is outside
    rows, _ = _rows(tmp_path, files)
    assert rows["writer_erased_clean"] == {"value": 0.2, "low": 0.19, "high": 0.21, "status": "FAIL"}
    assert rows["_claims"]["fail"] == 1


def test_an_interval_beside_the_value_is_picked_up(tmp_path):
    files = tc.gelu_metrics(0.0)
    key = "metrics/fig4_dla.json:paper.r"
    tc.set_key(files, key + "_low", -0.75)
    tc.set_key(files, key + "_high", -0.65)
    rows, _ = _rows(tmp_path, files)
    assert rows["dla_corr"]["low"] == -0.75 and rows["dla_corr"]["high"] == -0.65
    assert "low" not in rows["adv_p1"]  # a logit difference of one forward pass has no interval


def test_claims_of_another_model_keep_this_runs_values(tmp_path):
    """On planted-4l the paper's claims are NOT RUN, but the row still holds what this run measured."""
    files = tc.synthetic_metrics("planted-4l")
    rows, _ = _rows(tmp_path, files, "planted-4l")
    fit = files["metrics/fig4_dla.json"]["paper"]
    assert rows["dla_corr"] == {"value": fit["r"], "low": fit["r_low"], "high": fit["r_high"], "status": "NOT RUN"}
    assert rows["_claims"]["not_run"] == len(tc.REGISTRY["claims"])


def test_a_missing_metrics_file_leaves_the_status_only(tmp_path):
    files = tc.gelu_metrics(0.0)
    del files["metrics/fig4_dla.json"]
    rows, _ = _rows(tmp_path, files)
    assert rows["dla_corr"] == {"status": "FAIL"}


def test_planted_checks_have_a_row_each_loops_unrolled(tmp_path):
    from erasure.verification.verify import load_truth

    truth = load_truth()
    tc.write_tree(tmp_path, tc.synthetic_metrics("planted-4l"), "planted-4l")
    report = run_verification(tmp_path, {"model": "planted-4l"}, tc.REGISTRY)
    rows = headline_rows(report, tc.REGISTRY, Metrics(tmp_path), truth)
    for result in report["planted"]:
        name = result["id"].replace("[", ".").rstrip("]")
        assert rows[name]["status"] == result["status"], name
    assert {f"planted_eraser_median.{h}" for h in truth.erasers} <= set(rows)
    assert rows["planted_eraser_median.L2H5"]["value"] == tc.synthetic_metrics("planted-4l")[
        "metrics/fig2_components.json"]["components"]["L2H5"]["all"]["median"]
    assert rows["_planted"]["pass"] + rows["_planted"]["fail"] == len(report["planted"])


def _report_rows(md: str) -> dict[str, list[str]]:
    """The report's claim and planted rows, by id: their cells."""
    rows = {}
    for line in md.split("## The paper vs the authors' committed figure")[0].splitlines():
        if line.startswith("| ") and not line.startswith(("| id ", "| claim ", "|---")):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0]] = cells
    return rows


def test_the_report_shows_our_value_on_every_row_and_agrees_with_dvc_metrics(tmp_path):
    """NOT RUN rows too (on another model the claims are not judged, but the value is shown, as
    `dvc metrics show` shows it); every number of a rule-only claim has a label; single values are written with
    the same significant digits as metrics/headline, so the two agree."""
    from erasure.verification.report import display, render_report_md
    files = tc.synthetic_metrics("smollm2-135m")
    tc.set_key(files, "metrics/fig1_resid.json:checkpoints.resid_mid2.clean.all.median", 0.1234567)
    rows, report = _rows(tmp_path, files, "smollm2-135m")
    md_rows = _report_rows(render_report_md(report, digits=6))
    assert {r["status"] for r in report["claims"]} == {"NOT RUN"}
    for r in report["claims"]:
        ours = md_rows[r["id"]][3]
        assert ours != "—", r["id"]
        if isinstance(r["reproduced"], dict) and not isinstance(r["paper_value"], dict):  # a rule-only claim
            assert all(f"{label}: " in ours for label in r["reproduced"]), (r["id"], ours)
        row = rows.get(r["id"])
        if row is not None and "value" in row and not isinstance(row["value"], str):
            assert ours == display(row["value"], 6), (r["id"], ours, row["value"])
    assert md_rows["writer_erased_clean"][3] == "0.123457"
    assert "NOT RUN (metrics are from smollm2-135m" in md_rows["writer_erased_clean"][6]
