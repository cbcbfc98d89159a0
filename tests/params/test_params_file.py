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
