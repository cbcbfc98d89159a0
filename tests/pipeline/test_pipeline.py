"""End to end, as a newcomer runs it offline: a copy of the checkout, model planted-4l, `dvc repro`.

The measurements are compared with the planted truth (by construction), never with stored outputs.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import run_dvc

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _metrics(run: Path, name: str) -> dict:
    return json.loads((run / "metrics" / name).read_text())


def test_repro_makes_every_figure_and_metric(planted_run):
    figures = ["fig1_resid", "fig2_components", "fig3_heads", "fig4_dla", "fig5_adversarial", "erasure_atlas",
               "persistence", "dla_audit"]
    for fig in figures:
        png = planted_run / "figures" / f"{fig}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", fig
    for name in ("fig1_resid", "fig2_components", "fig3_heads", "fig4_dla", "fig5_adversarial", "discovery",
                 "dla_audit"):
        assert _metrics(planted_run, f"{name}.json")["model"] == "planted-4l"
    for out in ("paper/paper.md", "paper/paper.html", "paper/verification.md", "paper/verification.json"):
        assert (planted_run / out).stat().st_size > 0, out


def test_drawing_stages_run_without_torch(planted_run):
    """Every stage but prompts and activations reads cached results only: run for real, none imports torch,
    TransformerLens or seaborn (tests/pipeline/test_stage_imports.py checks their imports in the fast tier)."""
    from test_stage_imports import HEAVY, drawing_stage_modules

    for module in drawing_stage_modules():
        code = (f"import runpy, sys\ntry:\n    runpy.run_module({module!r}, run_name='__main__')\n"
                f"except SystemExit as end:\n    assert not end.code, end.code\n"
                f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
        result = subprocess.run([sys.executable, "-c", code], cwd=planted_run, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, (module, result.stderr[-2000:])
        assert result.stdout.strip().splitlines()[-1] == "[]", (module, result.stdout[-500:])


def test_measured_erasure_matches_planted_truth(planted_run):
    from erasure.planted_truth import planted_truth

    truth = planted_truth()
    fig2 = _metrics(planted_run, "fig2_components.json")
    for head, fraction in truth.erasers.items():
        measured = fig2["components"][head]["all"]["median"]
        assert measured == pytest.approx(-fraction, abs=truth.tolerances["eraser_pr"]), head
    total = fig2["eraser_sum"]["all"]["median"]
    assert total == pytest.approx(-truth.total_erasure, abs=truth.tolerances["total_erasure"])
    assert fig2["negative_heads"] == sorted(truth.erasers, key=lambda h: int(h[3:]))


def test_patched_erasers_measure_about_zero(planted_run):
    from erasure.planted_truth import planted_truth

    truth = planted_truth()
    fig3 = _metrics(planted_run, "fig3_heads.json")
    for head in truth.erasers:
        clean = fig3["heads"][head]["clean"]["all"]["median"]
        patched = fig3["heads"][head]["patched"]["all"]["median"]
        assert abs(patched) < truth.tolerances["eraser_pr_patched"], head
        assert abs(patched) < abs(clean) or truth.erasers[head] < truth.tolerances["eraser_pr_patched"]
    fig1 = _metrics(planted_run, "fig1_resid.json")
    mid = fig1["checkpoints"][fig1["erasure_checkpoint"]]
    assert mid["clean"]["all"]["median"] == pytest.approx(truth.resid_after_erasure,
                                                          abs=truth.tolerances["resid_after_erasure"])
    assert mid["patched"]["all"]["median"] == pytest.approx(truth.resid_after_erasure_patched,
                                                            abs=truth.tolerances["resid_after_erasure_patched"])


def test_same_params_same_metrics(planted_run, progress):
    """Seeded and deterministic: re-running the activation and figure stages reproduces the metrics exactly."""
    before = _metrics(planted_run, "fig2_components.json")
    result = run_dvc(["repro", "-f", "-s", "activations", "fig2_components"], planted_run, progress, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:]
    assert _metrics(planted_run, "fig2_components.json") == before


def test_audit_same_bytes_and_planted_writer(planted_run, progress):
    """The DLA audit rerun writes the same bytes (seeded, deterministic, rounded once); its writer row is the planted
    erasure, checked against the truth (paper/claims.yaml's planted checks state the same, with their reasons)."""
    from erasure.planted_truth import planted_truth

    outs = ["metrics/dla_audit.json", "plots/dla_audit.csv", "figures/dla_audit.png"]
    before = {o: (planted_run / o).read_bytes() for o in outs}
    result = run_dvc(["repro", "-f", "-s", "dla_audit"], planted_run, progress, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:]
    assert {o: (planted_run / o).read_bytes() for o in outs} == before
    truth = planted_truth()
    row = _metrics(planted_run, "dla_audit.json")["components"][truth.writer]
    assert row["eraser_share"] == pytest.approx(truth.total_erasure, abs=truth.tolerances["total_erasure"])
    assert row["repair_share_low"] <= truth.total_erasure + 0.08 and row["repair_share_high"] >= truth.total_erasure - 0.08


def test_no_claim_metric_moved_against_the_stored_reference(planted_run):
    """Regression: the claim metrics of this run equal reference/planted-4l (stored from a run on this machine
    kind) within params paper.regression (1e-4 abs + 1e-4 rel: a float32 rerun reproduces them to ~1e-6)."""
    result = subprocess.run(
        [sys.executable, "-m", "scripts.regression", "--ref-dir", str(REPO / "reference" / "planted-4l")],
        cwd=planted_run, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_built_paper_embeds_every_figure_and_says_not_the_papers_model(planted_run):
    """The real HTML of the planted run: every figure inline, every variable filled, the banner, NOT RUN claims."""
    import base64

    from html_page import parse

    html_text = (planted_run / "paper" / "paper.html").read_text()
    md_text = (planted_run / "paper" / "paper.md").read_text()
    assert "{{" not in html_text and "[missing:" not in md_text
    embedded = {base64.b64decode(img["src"].split(",", 1)[1]) for img in parse(html_text).images
                if img["src"].startswith("data:image/png;base64,")}
    assert embedded == {png.read_bytes() for png in (planted_run / "figures").glob("*.png")}
    assert "Not the paper's model" in html_text and "planted-4l" in html_text
    report = json.loads((planted_run / "paper" / "verification.json").read_text())
    assert report["claims"] and all(
        c["status"] == "NOT RUN" and "metrics are from planted-4l" in c["reason"] for c in report["claims"]
    )
    assert report["planted"] and all(c["status"] == "PASS" for c in report["planted"])


def _dvc_out(args: list[str], cwd: Path) -> str:
    result = subprocess.run(["dvc", *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_dvc_metrics_show_fits_a_terminal(planted_run):
    """The DVC metrics are metrics/headline/: one row per claim and planted check, at most ~150 numbers; the
    table `dvc metrics show` prints fits 120 columns (one row a screen line)."""
    lines = _dvc_out(["metrics", "show"], planted_run).splitlines()
    assert max(map(len, lines)) <= 120, max(lines, key=len)
    shown = json.loads(_dvc_out(["metrics", "show", "--json"], planted_run))[""]["data"]
    assert all(path.startswith(("metrics/headline/", "metrics/audit_headline/")) for path in shown)
    numbers = [v for f in shown.values() for v in f["data"].values()
               if isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert len(numbers) <= 170  # claims and planted checks, and the audit's five rows
    report = json.loads((planted_run / "paper" / "verification.json").read_text())
    statuses = {path: f["data"].get("status") for path, f in shown.items()}
    for result in report["claims"] + report["planted"]:
        name = result["id"].replace("[", ".").rstrip("]")
        rows = [s for p, s in statuses.items() if p == f"metrics/headline/{name}.json"
                or isinstance(result["paper_value"], dict) and p.startswith(f"metrics/headline/{name}.")]
        assert rows and set(rows) == {result["status"]}, result["id"]
    assert len(lines) == len(shown) + 1  # a header, then one line per file


def test_dvc_plots_render_every_plot_file(planted_run):
    """`dvc plots show` draws each plots/*.csv with its dvc.yaml template, every row a data point."""
    import csv

    from erasure.paths import PLOTS

    shown = json.loads(_dvc_out(["plots", "show", "--json"], planted_run))["data"]
    for path in map(str, PLOTS.values()):
        (render,) = shown[path]
        with open(planted_run / path, newline="") as f:
            rows = list(csv.DictReader(f))
        assert render["type"] == "vega" and len(render["content"]["data"]["values"]) >= len(rows) > 0, path


def test_dvc_plots_page_declares_utf8(planted_run, tmp_path):
    """The page `dvc plots show/diff` writes says it is UTF-8 (.dvc/plots/page.html: DVC's own page plus the meta
    tag). Without it, a browser opening the page from disk decoded it and its scripts as Latin-1: Vega's minus signs
    showed as `â^'` when the scripts were served locally. The page is built by `npm ci` (package.json) and not
    committed, so the copy gets this checkout's."""
    import shutil

    page = REPO / ".dvc" / "plots" / "page.html"
    assert page.is_file(), "run `npm ci`: it builds .dvc/plots/page.html, the plots page dvc.yaml's config names"
    shutil.copy2(page, planted_run / ".dvc" / "plots" / "page.html")
    _dvc_out(["plots", "show", "-o", str(tmp_path / "out")], planted_run)
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert page.index('<meta charset="utf-8">') < page.index("<script")
    assert r"\u2423" in page or "␣" in page  # the token `␣bottom` of the aligned-tokens plot, JSON-escaped


def _gate(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.check_claims"], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_a_failed_check_is_reported_and_the_paper_still_built(planted_run, tmp_path, progress):
    """One planted check forced to FAIL (its expected value moved in paper/claims.yaml, in a copy of the run):
    `dvc repro` exits 0, reruns only verify and paper, and the paper says what FAILed and why; the gate exits 1
    on that run and 0 on the unedited one."""
    import shutil

    assert _gate(planted_run).returncode == 0
    work = tmp_path / "run"
    shutil.copytree(planted_run, work, symlinks=True)
    claims = work / "paper" / "claims.yaml"
    text = claims.read_text()
    edited = text.replace("    expected: {truth: total_erasure, scale: -1}\n", "    expected: -0.5\n", 1)
    assert edited != text
    claims.write_text(edited)
    result = run_dvc(["repro"], work, progress, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:]
    ran = {line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("Running stage")}
    assert ran == {"verify", "paper"}, ran
    md_text = (work / "paper" / "paper.md").read_text()
    total = json.loads((planted_run / "paper" / "verification.json").read_text())["summary"]["planted"]["total"]
    assert f"planted-truth checks: {total - 1} PASS, 1 FAIL" in " ".join(md_text.split())
    assert "> **What FAILed, and why.**" in md_text and "> - **planted_eraser_sum**: " in md_text
    gate = _gate(work)
    assert gate.returncode == 1 and gate.stdout.startswith("FAIL planted_eraser_sum: ")
