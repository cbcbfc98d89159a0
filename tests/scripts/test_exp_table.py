"""scripts/exp_table.py: the params and headline metrics that differ between experiments, one column per
experiment, every line within the width; read from DVC's own `dvc exp show --json` of a small repository."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.exp_table import collect, table

ROOT = Path(__file__).resolve().parents[2]
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
# A stage in the layout of metrics/headline/ (stage verify): one file per claim with value, interval, status.
STAGE = """import json, os, yaml
p = yaml.safe_load(open("params.yaml"))
os.makedirs("metrics/headline", exist_ok=True)
for claim in ("slope", "intercept"):
    value = p["fig"]["scale"] * (2.0 if claim == "slope" else 1.0) + p["offset"]
    json.dump({"value": value, "low": value - 0.1, "high": value + 0.1,
               "status": "PASS" if value < 5 else "FAIL"}, open(f"metrics/headline/{claim}.json", "w"))
"""


def _column(params: dict, metrics: dict) -> dict:
    return {"params": {"params.yaml": {"data": params}},
            "metrics": {f"metrics/headline/{k}.json": {"data": v} for k, v in metrics.items()}}


def test_only_what_differs_in_rows_within_the_width():
    base = {"model": "planted-4l", "fig4": {"positions": "all", "seed": 0}, "erasers": ["L2H2", "L2H3"]}
    show = [{"rev": "workspace", "name": None, "data": _column(base, {"dla_slope": {"value": -0.86733,
                                                                               "status": "NOT RUN"}})},
            {"rev": "a" * 40, "name": "main", "data": _column(base, {"dla_slope": {"value": -0.86733,
                                                                                 "status": "NOT RUN"}}),
             "experiments": [{"revs": [{"rev": "b" * 40, "name": f"exp-{i}", "data": _column(
                 {**base, "fig4": {"positions": "no_bos", "seed": i}},
                 {"dla_slope": {"value": -0.867335 - i, "status": "NOT RUN"}})}]} for i in range(8)]
             + [{"revs": [{"rev": "c" * 40, "name": "queued", "data": None}], "executor": {"state": "queued"}}]}]
    columns = collect(show)
    assert list(columns)[:3] == ["workspace", "main", "exp-0"] and "queued" not in columns
    for width in (40, 60, 100):
        text = table(columns, width)
        lines = text.splitlines()
        assert max(map(len, lines)) <= width, (width, text)
        rows = [line.split()[0] for line in lines if line and not line.startswith(" ")]
        assert set(rows) == {"fig4.positions", "fig4.seed", "dla_slope"}, text  # unchanged: model, erasers, status
        shown = " ".join(lines)
        assert all(name in shown for name in columns), text  # every experiment, in blocks when they do not fit
    assert len(table(columns, 100).split("\n\n")) > 1
    assert table({"a": collect(show)["main"], "b": collect(show)["main"]}, 100).startswith("no param")


@pytest.mark.slow  # three `dvc exp run`s: about 15 s
def test_real_experiments_of_a_small_repository(tmp_path):
    (tmp_path / "params.yaml").write_text("fig:\n  scale: 1.0\n  label: x\noffset: 0.5\n")
    (tmp_path / "stage.py").write_text(STAGE)
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  verify:\n    cmd: python stage.py\n    deps: [stage.py]\n    params: [fig, offset]\n"
        "    metrics: [metrics/headline: {cache: false}]\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def run(*cmd):
        result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout
    run("git", "init", "-q")
    run("dvc", "init", "-q")
    run("dvc", "repro")
    run(*GIT, "add", "-A")
    run(*GIT, "commit", "-qm", "baseline")
    run("dvc", "exp", "run", "--temp", "-S", "fig.scale=2.5", "-n", "scaled")
    run("dvc", "exp", "run", "--temp", "-S", "offset=0.25", "-n", "shifted")
    show = json.loads(run("dvc", "exp", "show", "--json"))
    columns = collect(show, intervals=True)
    assert {"scaled", "shifted", "workspace"} <= set(columns), list(columns)
    assert columns["scaled"]["fig.scale"] == 2.5 and columns["scaled"]["slope value"] == 5.5
    assert columns["scaled"]["slope status"] == "FAIL" and columns["shifted"]["slope low"] == pytest.approx(2.15)
    text = table(columns, 100)
    assert max(map(len, text.splitlines())) <= 100
    rows = {line.split()[0] for line in text.splitlines()[1:]}
    assert {"fig.scale", "offset", "slope", "intercept"} <= rows and "fig.label" not in rows, text

    cli = subprocess.run([sys.executable, "-m", "scripts.exp_table", "--width", "100"], cwd=tmp_path, env={
        **env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0 and cli.stdout == table(collect(show), 100) + "\n", cli.stderr
