"""Whatever the writer and erasers, `dvc repro` runs to the paper (issue 18): an MLP writer (discovery picks MLP11
on Gemma 3 270M), with erasers or with none. Each figure either handles the roles or records in its metrics
which part does not apply and why. planted-4l in a scratch copy, on a small prompt set (the numbers are not the
point; the planted truth is checked by test_pipeline.py).
"""
from __future__ import annotations

import json

import pytest

from helpers import copy_checkout, run_dvc

pytestmark = pytest.mark.slow


def _small_run(writer: str, erasers: list[str]):
    def edit(params: dict) -> None:
        params["model"] = "planted-4l"
        entry = params["models"]["planted-4l"]
        entry.update(writer=writer, erasers=erasers)
        entry["prompts"].update(n_text=3, n_code=1, seq_len=64)
        params["stats"]["n_bootstrap"] = 20
        params["discovery"].update(n_vcomp_prompts=2)
        params["fig5"]["n_resample"] = 8
    return edit


def _metrics(work, name: str) -> dict:
    return json.loads((work / "metrics" / f"{name}.json").read_text())


@pytest.mark.parametrize("erasers", [["L2H2", "MLP2"], []], ids=["erasers", "no-erasers"])
def test_an_mlp_writer_runs_to_the_paper(tmp_path, progress, erasers):
    work = copy_checkout(tmp_path, _small_run("MLP1", erasers))
    result = run_dvc(["repro"], work, progress, timeout=1200)
    assert result.returncode == 0, result.stdout[-6000:]
    assert (work / "paper" / "paper.html").stat().st_size > 10_000

    fig5 = _metrics(work, "fig5_adversarial")
    for prompt in fig5["prompts"].values():  # the writer is resampled through its own input, ln2
        assert prompt["writer"] == "MLP1" and prompt["writer_input"].startswith("ln2")
        assert set(prompt["heads"]) >= {"MLP1", prompt["comparison_head"], prompt["auto_head"]}

    fig1, fig2, fig3, fig4 = (_metrics(work, n) for n in ("fig1_resid", "fig2_components", "fig3_heads", "fig4_dla"))
    assert all(m["writer"] == "MLP1" and m["erasers"] == erasers for m in (fig1, fig2, fig3, fig4))
    assert fig1["applicable"] and fig2["applicable"]
    if erasers:
        assert fig3["applicable"] and set(fig3["heads"]) == {f"L2H{h}" for h in range(8)}
        assert fig4["applicable"] and fig4["paper"]["n_points"] == 4 * 64
        assert fig1["vcomp_share"] is not None and fig2["erasure_total_pct"] is not None
        assert fig4["parts_not_applicable"] == {}  # L2H2 is a head: the OV variant applies
    else:
        assert fig1["vcomp_share"] is None and "vcomp_share" in fig1["parts_not_applicable"]
        assert fig2["erasure_total_pct"] is None and "erasure_total_pct" in fig2["parts_not_applicable"]
        for m in (fig3, fig4):
            assert not m["applicable"] and m["reason"].startswith("no erasers")
        assert (work / "plots" / "fig3_heads.csv").read_text().startswith("bar,head,run,eraser")
    md_text = (work / "paper" / "paper.md").read_text()
    assert "[missing:" not in md_text  # every part that does not apply says why instead
    if not erasers:
        assert "**This run.** Model **planted-4l**; writer **MLP1**; erasers **none**." in md_text
        for part in ("The erasure part of Fig 1", "The erasers' part of Fig 2", "Fig 3", "Fig 4"):
            assert f"> **{part} does not apply:** no erasers" in md_text, part
