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


@pytest.mark.parametrize("override, new_line", [
    ("model=planted-4l", "model: planted-4l"),
    ("models.planted-4l.writer=L0H3", "    writer: L0H3"),
    ("models.gelu-4l.revision=abc123", "    revision: abc123"),
    ("models.gelu-4l.prompts.n_text=8", "      n_text: 8"),
    ("fig4.positions=no_bos", "  positions: no_bos"),
    ("fig5.prompts.p2.text=Go to the", "      text: Go to the"),
    ("outputs.significant_digits=8", "  significant_digits: 8"),
])
def test_set_param_changes_one_line(tmp_path, override, new_line):
    before, after = _set(tmp_path, override)
    changed = [line for line in difflib.unified_diff(before, after, lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert len(changed) == 2 and changed[0].startswith("-") and changed[1].split("#")[0].rstrip() == "+" + new_line, \
        changed
