"""What the stages write besides the figures: floats rounded once (so reruns do not churn), plot data for
`dvc plots` that matches the metrics it is read from, and a dvc.yaml that declares and draws every plot file."""
from __future__ import annotations

import csv
import errno
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

import synthetic_metrics as tc
from erasure.analysis.audit_pool import plot_rows
from erasure.errors import DataError
from erasure.io import OutputSet, atomic_write_csv, atomic_write_json, round_significant
from erasure.mechanism.names import display_token
from erasure.paths import PLOTS
from erasure.plotting import data

ROOT = Path(__file__).resolve().parents[2]
DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())


@pytest.mark.parametrize("digits", [4, 6, 9])
def test_rounding_keeps_the_stated_significant_digits(digits):
    rng = np.random.default_rng(0)
    values = [float(v) for v in rng.normal(0, 1, 200) * 10.0 ** rng.integers(-9, 9, 200)]
    for x, r in zip(values, round_significant(values, digits)):
        assert abs(r - x) <= 0.5 * 10.0 ** (math.floor(math.log10(abs(x))) - digits + 1) * (1 + 1e-12), (x, r)
        assert len(repr(abs(r)).split("e")[0].replace(".", "").strip("0")) <= digits, r  # what the file holds
        assert round_significant(r, digits) == r  # rounding again changes nothing: a rerun writes the same


def test_rounding_touches_only_floats():
    data_in = {"a": [1, True, None, "0.123456789", float("nan"), float("inf")], "b": {"c": 0.123456789}}
    out = round_significant(data_in, 3)
    assert out["a"][:4] == [1, True, None, "0.123456789"] and math.isnan(out["a"][4]) and out["a"][5] == math.inf
    assert out["b"]["c"] == 0.123
    assert isinstance(out["a"][1], bool)


def test_a_difference_in_the_last_float_digits_writes_the_same_bytes(tmp_path):
    """The churn the rounding prevents: two float64 results 1 ulp apart (as a rerun gave for fig4_dla)."""
    a = {"r": -0.999072506865483, "slope": -0.8673299709304307}
    b = {k: float(np.nextafter(v, 0)) for k, v in a.items()}
    assert a != b
    atomic_write_json(tmp_path / "a.json", a, 6)
    atomic_write_json(tmp_path / "b.json", b, 6)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_csv_rows_read_back_as_written(tmp_path):
    rows = [{"bar": "p1 L0H2 clean", "dla": 0.123456789, "q25": None, "text": 'a, "b"\tc'},
            {"bar": "p1 L0H2 resampled", "dla": -2.5e-9, "q25": 1.0, "text": ""}]
    atomic_write_csv(tmp_path / "t.csv", rows, 6)
    with open(tmp_path / "t.csv", newline="") as f:
        back = list(csv.DictReader(f))
    assert [r["bar"] for r in back] == ["p1 L0H2 clean", "p1 L0H2 resampled"]
    assert float(back[0]["dla"]) == 0.123457 and float(back[1]["dla"]) == -2.5e-9 and back[0]["q25"] == ""
    assert back[0]["text"] == 'a, "b"\tc'


def test_fig1_rows_are_the_checkpoint_medians_in_order():
    fig1 = tc.synthetic_metrics()["metrics/fig1_resid.json"]
    rows = data.fig1_rows(fig1, "all")
    assert [r["checkpoint"] for r in rows] == list(fig1["checkpoints"]) and [r["step"] for r in rows] == list(
        range(len(rows)))
    for row in rows:
        stats = fig1["checkpoints"][row["checkpoint"]]
        assert row["clean"] == stats["clean"]["all"]["median"] and row["patched"] == stats["patched"]["all"]["median"]
        assert row["patched_q87_5"] == stats["patched"]["all"]["q87_5"]


@pytest.mark.parametrize("layers", ["all", "after_writer"])
def test_fig2_rows_follow_the_figures_layer_selection(layers):
    fig2 = tc.synthetic_metrics()["metrics/fig2_components.json"]
    rows = data.fig2_rows(fig2, "no_bos", layers)
    names = [r["component"] for r in rows]
    assert "L0H2" not in names and ("L0H1" in names) == (layers == "all") and "MLP3" in names
    assert {r["component"] for r in rows if r["role"] == "eraser"} == set(tc.ERASERS)
    assert all(r["median"] == fig2["components"][r["component"]]["no_bos"]["median"] for r in rows)


def test_fig3_and_fig5_rows_label_every_bar_once():
    files = tc.synthetic_metrics()
    fig3 = data.fig3_rows(files["metrics/fig3_heads.json"], "all")
    assert len({r["bar"] for r in fig3}) == len(fig3) == 2 * 8
    prompts = files["metrics/fig5_adversarial.json"]["prompts"]
    fig5 = data.fig5_rows(prompts)
    assert len({r["bar"] for r in fig5}) == len(fig5) == 2 * sum(len(p["heads"]) for p in prompts.values())
    row = next(r for r in fig5 if r["bar"] == "p2 L2H1 resampled")
    assert row["dla"] == prompts["p2"]["heads"]["L2H1"]["resampled"]["median"] and row["role"] == "comparison"


def test_the_scatter_sample_is_the_figures_and_seeded():
    x, y = np.arange(1000.0), -np.arange(1000.0)
    a = data.scatter_sample(x, y, 100, seed=3)
    assert np.array_equal(a[0], data.scatter_sample(x, y, 100, seed=3)[0]) and a[0].size == 100
    assert np.array_equal(a[1], -a[0])  # pairs stay together
    assert data.scatter_sample(x, y, 5000, seed=3)[0] is x  # fewer points than the cap: all of them


@pytest.mark.parametrize("text, token_id, shown", [
    (" bottom", None, "␣bottom"), ("\n\tdef", None, "↵⇥def"), ("", 34978, "⟨id 34978⟩"), ("a\x01", None, "a\\x01"),
    ("é", None, "é"),
])
def test_tokens_are_shown_with_their_whitespace(text, token_id, shown):
    assert display_token(text, token_id) == shown


def _plot_defs() -> dict[str, dict]:
    return {path: spec for item in DVC_YAML["plots"] for path, spec in item.items()}


def _stage_outs() -> set[str]:
    return {path for stage in DVC_YAML["stages"].values() for item in stage.get("outs", [])
            for path in ([item] if isinstance(item, str) else item)}


def test_every_plot_file_is_a_stage_output_and_drawn_with_columns_it_has():
    files = tc.synthetic_metrics()
    columns = {  # the header each plot file gets, from the same row builders the stages use
        "fig1": data.fig1_rows(files["metrics/fig1_resid.json"], "all"),
        "fig2": data.fig2_rows(files["metrics/fig2_components.json"], "all", "all"),
        "fig3": data.fig3_rows(files["metrics/fig3_heads.json"], "all"),
        "fig4": data.fig4_rows(np.zeros(3), np.ones(3)),
        "fig5": data.fig5_rows(files["metrics/fig5_adversarial.json"]["prompts"]),
        "aligned_tokens": data.aligned_token_rows([{"token": " a", "id": 1, "score": 0.5}]),
        "writers": data.writer_rows([{"name": "L0H2", "erasure": 0.8, "excluded_by": []}]),
        "audit": plot_rows(files["metrics/dla_audit.json"]),
    }
    assert set(columns) == set(PLOTS)
    defs, outs = _plot_defs(), _stage_outs()
    for key, path in PLOTS.items():
        spec = defs[str(path)]
        assert str(path) in outs, path
        header = set(columns[key][0])
        ys = spec["y"] if isinstance(spec["y"], list) else [spec["y"]]
        assert {spec["x"], *ys} <= header, (path, spec, header)
        assert spec["template"] in {"simple", "scatter", "bar_horizontal_sorted"} or (
            ROOT / ".dvc" / "plots" / f"{spec['template']}.json").is_file(), spec["template"]  # DVC's, or ours
    assert set(defs) == {str(p) for p in PLOTS.values()}


def test_the_dvc_metrics_are_the_headline_alone():
    """`dvc metrics` reads metrics/headline/ (and the audit's few rows in the same shape, metrics/audit_headline/)
    only: the figures' full records (thousands of numbers) are plain outputs, so `dvc metrics show` stays a table a
    terminal can hold."""
    declared = [path for stage in DVC_YAML["stages"].values() for item in stage.get("metrics", [])
                for path in ([item] if isinstance(item, str) else item)]
    assert sorted(declared) == ["metrics/audit_headline", "metrics/headline"]
    assert json.loads(json.dumps(DVC_YAML)).get("metrics") is None  # no top-level metrics either


def test_an_output_set_appears_together_or_not_at_all(tmp_path):
    """A stage's outputs in one OutputSet: all renamed into place at the end; an OS fault in a later one (here
    ENOSPC raised by its writer) names that output and leaves the previous set, without any temp."""
    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device")

    with OutputSet() as out:
        out.file(tmp_path / "tables", lambda tmp: tmp.mkdir())
        out.text(tmp_path / "a.json", "{}")
        assert not (tmp_path / "a.json").exists()  # not before the set is committed
    assert (tmp_path / "a.json").read_text() == "{}" and (tmp_path / "tables").is_dir()
    before = snapshot_tree(tmp_path)
    with pytest.raises(DataError, match=r"^cannot write .*b\.json: No space left on device \(ENOSPC\)$"):
        with OutputSet() as out:
            out.file(tmp_path / "tables", lambda tmp: (tmp.mkdir(), (tmp / "new").write_text("x")))
            out.text(tmp_path / "a.json", "[]")
            out.file(tmp_path / "b.json", full)
    assert snapshot_tree(tmp_path) == before


def test_a_rename_refused_partway_through_the_commit_puts_the_old_set_back(tmp_path, monkeypatch):
    """Every temp written, then the rename of the second output fails (a read-only file or a mount point says
    EBUSY/EROFS/EACCES): the first output, already replaced, is put back; the old set is whole, no temp left."""
    for name, text in (("a.json", "old a"), ("b.json", "old b"), ("c.json", "old c")):
        (tmp_path / name).write_text(text)
    before = snapshot_tree(tmp_path)
    real_replace = os.replace

    def refuse_b(src, dst):
        if Path(src).name == ".b.json.tmp":  # the new b.json cannot be put in place
            raise OSError(errno.EBUSY, "Device or resource busy", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", refuse_b)
    with pytest.raises(DataError, match=r"^cannot write .*b\.json: Device or resource busy \(EBUSY\)$"):
        with OutputSet() as out:
            for name in ("a.json", "b.json", "c.json"):
                out.text(tmp_path / name, f"new {name}")
    assert snapshot_tree(tmp_path) == before


def snapshot_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): (p.read_text() if p.is_file() else "/") for p in sorted(root.rglob("*"))}
