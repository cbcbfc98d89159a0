"""The cross-model comparison: collecting DVC experiments, the gelu-4l-like criteria, the planted control, the
figure, and the stage on a scratch directory."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

import synthetic_metrics as tc
from erasure.analysis.comparison import collect_experiments, compare, criteria, discovery_at, head_share, writer_row
from erasure.errors import DataError
from erasure.planted_truth import planted_truth
from erasure.plotting.comparison import plot_comparison
from helpers import repo_params


def _exp(name, model, timestamp, state="success", error=None):
    return {"revs": [{"rev": name.ljust(40, "0"), "name": name, "error": error,
                      "data": {"timestamp": timestamp, "params": {"params.yaml": {"data": {"model": model}}}}}],
            "executor": None if state is None else {"state": state}, "name": name}


def test_collect_takes_each_models_newest_finished_experiment():
    show = [
        {"rev": "workspace", "experiments": None},
        {"rev": "c" * 40, "experiments": [
            _exp("old", "smollm2-135m", "2026-01-01T10:00:00"),
            _exp("new", "smollm2-135m", "2026-01-02T10:00:00"),
            _exp("busy", "smollm2-135m", "2026-01-03T10:00:00", state="running"),  # metrics not its own yet
            _exp("waiting", "gemma3-270m", "2026-01-03T10:00:00", state="queued"),
            _exp("pulled", "planted-4l", "2026-01-01T09:00:00", state=None),  # `dvc exp pull`: no executor
            _exp("broken", "planted-4l", "2026-01-04T09:00:00", error={"msg": "failed"}),
        ]},
    ]
    collected, notes = collect_experiments(show)
    assert {m: r["experiment"] for m, r in collected.items()} == {"smollm2-135m": "new", "planted-4l": "pulled"}
    assert collected["smollm2-135m"]["baseline"] == "c" * 40
    assert any("busy: running" in n for n in notes) and any("waiting: queued" in n for n in notes)
    assert any(n.startswith("broken: no results (failed)") for n in notes)


def test_discovery_of_another_model_is_refused():
    record = {"model": "gemma3-270m", "experiment": "e", "rev": "r"}
    assert discovery_at(record, lambda rev, path: json.dumps({"model": "gemma3-270m"}))["model"] == "gemma3-270m"
    with pytest.raises(DataError, match="ran gemma3-270m but its metrics/discovery.json is from 'planted-4l'"):
        discovery_at(record, lambda rev, path: json.dumps({"model": "planted-4l"}))


def test_head_share_counts_only_what_is_taken_away():
    assert head_share(0.6, 0.2) == pytest.approx(0.75)
    assert head_share(0.6, -0.3) == 1.0  # MLPs adding to the writer take nothing away
    assert head_share(-0.1, -0.1) is None and head_share(None, 0.2) is None


def test_criteria_need_every_condition():
    from erasure.params.sections import Compare

    c = Compare.model_validate(repo_params()["compare"])
    good = writer_row(tc.discovery_record("x")["writers"][0])
    assert all(v["pass"] for v in criteria(good, c).values())
    for change, failing in [({"top_frequency": 0.5}, "top_frequency"), ({"erasure_low": 0.1}, "erasure_lower"),
                            ({"head_share": 0.2}, "head_share"), ({"vcomp_share_low": None}, "vcomp_share_lower")]:
        checks = criteria({**good, **change}, c)
        assert [k for k, v in checks.items() if not v["pass"]] == [failing]


def test_comparison_rows_verdicts_and_control():
    result = tc.comparison_metrics()
    by = {m["model"]: m for m in result["models"]}
    assert result["control"]["recovered"] is True and by["planted-4l"]["gelu4l_like"] is True
    smol = by["smollm2-135m"]
    assert smol["gelu4l_like"] is False and smol["positions"] == "rotary"
    assert [k for k, v in smol["criteria"].items() if not v["pass"]] == ["top_frequency", "head_share",
                                                                         "vcomp_share_lower"]
    assert smol["top_writer_alternatives"][1]["name"] == "MLP0"
    assert by["gemma3-270m"]["ran"] is False and result["not_run"] == ["gemma3-270m"]
    assert smol["shared_direction"] is False and by["planted-4l"]["shared_direction"] is False
    assert result["not_gelu4l_like"] == ["smollm2-135m"] and result["ci_level"] == 95


def test_the_control_fails_when_the_planted_writer_is_missed():
    truth = planted_truth()
    result = tc.comparison_metrics()
    control = next(m for m in result["models"] if m["model"] == "planted-4l")
    control["writers"][0] = {**control["writers"][0], "name": "L1H0", "erasure": truth.total_erasure + 0.2}
    from erasure.analysis.comparison import control_checks

    checks = control_checks(control, truth)
    assert checks["recovered"] is False
    assert not checks["checks"]["writer"]["pass"] and not checks["checks"]["erasure"]["pass"]


def test_a_result_of_another_model_in_the_sweep_folder_is_refused():
    from erasure.params.sections import Compare

    cp = Compare.model_validate(repo_params()["compare"])
    bad = {"smollm2-135m": {"discovery": tc.discovery_record("gemma3-270m")}}
    with pytest.raises(DataError, match="sweep/smollm2-135m.json holds discovery results for 'gemma3-270m'"):
        compare(bad, cp, planted_truth())


def test_figure(tmp_path):
    plot_comparison(tc.comparison_metrics(), tmp_path / "comparison.png", dpi=60, truth_erasure=0.87)
    assert (tmp_path / "comparison.png").stat().st_size > 5_000


def _stage(tmp_path, sweep: dict[str, str]):
    """Run `python -m stages.compare` in a scratch directory holding params.yaml and the given sweep files."""
    from helpers import ROOT

    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "sweep").mkdir()
    for name, text in sweep.items():
        (tmp_path / "sweep" / name).write_text(text)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "stages.compare"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow  # a subprocess importing torch and matplotlib: ~5-25 s on 2 shared cores
def test_stage_writes_the_comparison_and_its_figure(tmp_path):
    record = {"model": "planted-4l", "experiment": "e", "rev": "a" * 40,
              "discovery": tc.discovery_record("planted-4l", erasers=tuple(sorted(planted_truth().erasers)))}
    run = _stage(tmp_path, {"planted-4l.json": json.dumps(record)})
    assert run.returncode == 0, run.stderr
    result = json.loads((tmp_path / "metrics/comparison.json").read_text())
    assert result["control"]["recovered"] is True and result["not_run"] == ["smollm2-135m", "gemma3-270m"]
    assert (tmp_path / "figures/comparison.png").stat().st_size > 5_000


def test_stage_refuses_a_broken_sweep_file_in_one_line(tmp_path):
    run = _stage(tmp_path, {"smollm2-135m.json": "{not json"})
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert lines == ["error: sweep/smollm2-135m.json is not valid JSON at line 1, column 2 (Expecting property name "
                     "enclosed in double quotes): rerun `python -m scripts.collect_sweep`"]
    assert not (tmp_path / "metrics/comparison.json").exists()


def test_an_erasure_that_vanishes_once_centred_is_flagged_as_a_shared_direction():
    from erasure.analysis.comparison import model_entry
    from erasure.params.sections import Compare

    cp = Compare.model_validate(repo_params()["compare"])
    record = tc.discovery_record("gemma3-270m", writer="MLP11", erasure=1.3, positions="rotary")
    record["writers"][0]["subset"]["erasure_centred"] = -0.05
    entry = model_entry("gemma3-270m", {"discovery": record}, cp)
    assert entry["shared_direction"] is True
