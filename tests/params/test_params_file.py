"""params.yaml is laid out the way DVC writes it back, so `dvc exp run -S key=value` changes exactly one line.

DVC applies `-S` with `dvc.utils.hydra.apply_overrides` (a ruamel round trip); the test calls that same function on
a copy of the file, so it checks the file against the library itself.
"""
import difflib
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _set(tmp_path: Path, override: str) -> tuple[list[str], list[str]]:
    from dvc.utils.hydra import apply_overrides

    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    before = path.read_text().splitlines()
    apply_overrides(path, [override])
    return before, path.read_text().splitlines()


def test_setting_a_param_to_its_own_value_rewrites_nothing(tmp_path):
    model = yaml.safe_load((ROOT / "params.yaml").read_text())["model"]
    before, after = _set(tmp_path, f"model={model}")
    assert after == before


# key, then candidate values (the first that differs from the file's current value is set: the test holds with an
# experiment applied), and how the changed line reads
CASES = [
    ("model", ["planted-4l", "gelu-4l"], "model: {}"),
    ("models.planted-4l.writer", ["L0H3", "L0H4"], "    writer: {}"),
    ("models.gelu-4l.revision", ["abc123", "def456"], "    revision: {}"),
    ("models.gelu-4l.prompts.n_text", [8, 9], "      n_text: {}"),
    ("fig4.positions", ["no_bos", "no_bos_no_last"], "  positions: {}"),
    ("fig5.prompts.p2.text", ["Go to the", "Go to a"], "      text: {}"),
    ("outputs.significant_digits", [8, 9], "  significant_digits: {}"),
]


@pytest.mark.parametrize("key, candidates, line", CASES, ids=[c[0] for c in CASES])
def test_set_param_changes_one_line(tmp_path, key, candidates, line):
    from erasure.verification.metrics import lookup

    current = lookup(yaml.safe_load((ROOT / "params.yaml").read_text()), key)
    value = next(v for v in candidates if v != current)
    before, after = _set(tmp_path, f"{key}={value}")
    changed = [row for row in difflib.unified_diff(before, after, lineterm="", n=0)
               if row[:1] in "+-" and not row.startswith(("+++", "---"))]
    assert len(changed) == 2 and changed[0].startswith("-"), changed
    assert changed[1].split("#")[0].rstrip() == "+" + line.format(value), changed


# ---- params.yaml means to the stages what it means to DVC (issue 21) ---------------------------------------------

TRICKY = ["a: 010", "a: 0o10", "a: 0x1F", "a: 1_000", "a: 1e3", "a: 1:30", "a: yes", "a: on", "a: ~", "a: .inf",
          "a: -.NaN", "a: 2024-01-01", "a: '010'", "a: +12", "a: 0b101", "a: 12.", "a: .5", "a: Null", "a: TRUE"]


@pytest.mark.parametrize("text", TRICKY)
def test_a_value_reads_as_dvc_reads_it(tmp_path, text):
    """The stages' reader gives DVC's reading (dvc.utils.serialize.parse_yaml: what dvc.lock and `dvc params diff`
    record) for scalars YAML 1.1 and 1.2 read differently (`010` was 8 to the stages, 10 to DVC)."""
    from dvc.utils.serialize import parse_yaml

    from erasure.io import read_yaml

    path = tmp_path / "params.yaml"
    path.write_text(text + "\n")
    ours, dvcs = read_yaml(path)["a"], parse_yaml(text, str(path))["a"]
    assert ours == dvcs or (ours != ours and dvcs != dvcs), (text, ours, dvcs)  # NaN == NaN
    assert type(ours) is type(dvcs)


def test_merge_keys_read_like_the_expanded_file(tmp_path):
    """`fig3: {<<: *fig1}` (an anchor and a merge key) gives fig3 exactly fig1's checked values; the merged mapping
    is checked like any other (an unknown key it brings is named)."""
    from erasure.io import read_yaml
    from erasure.params.load import load_params

    raw = read_yaml(ROOT / "params.yaml")
    lines = (ROOT / "params.yaml").read_text().splitlines()
    start = lines.index("fig3:")
    end = next(i for i in range(start + 1, len(lines)) if lines[i] and not lines[i].startswith(" "))
    merged = lines[:start] + ["fig3:", "  <<: *fig1"] + lines[end:]
    merged[merged.index("fig1:")] = "fig1: &fig1"
    path = tmp_path / "params.yaml"
    path.write_text("\n".join(merged) + "\n")
    assert read_yaml(path)["fig3"] == raw["fig1"]
    assert load_params(path).fig3 == load_params(ROOT / "params.yaml").fig1
    path.write_text("\n".join(merged).replace("  <<: *fig1", "  <<: {dpi: 100, bandz: []}") + "\n")
    with pytest.raises(Exception, match="fig3.bandz is not allowed: unknown key"):
        load_params(path)
