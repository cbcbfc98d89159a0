"""Generated files are up to date. dvc.yaml's code deps are what `python -m scripts.stage_deps` writes from each
stage's import closure: every project file a stage imports (following imports inside functions too) is a dep, so
changing it reruns the stage, and no code dep is imported by nothing. docs/DESIGN.md's module table is what
`python -m scripts.design_map` writes from the modules' docstrings."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scripts.stage_deps import ROOT, closure, code_deps


def test_dvc_yaml_is_what_the_script_writes():
    result = subprocess.run([sys.executable, "-m", "scripts.stage_deps", "--check"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, "dvc.yaml's code deps are stale: run `python -m scripts.stage_deps`\n" + \
        result.stdout[-3000:]


def test_the_closure_follows_imports_inside_functions():
    """The rule the deps stand on: an import inside a function body counts (stages import heavy modules inside
    main()), and so do the assets a module names."""
    assert Path("erasure/models/load.py") in closure("stages.prompts")  # imported inside stages.prompts.main
    assert Path("erasure/models/planted.py") in closure("stages.prompts")  # inside load_model's planted branch
    assert Path("erasure/models/assets/planted_tokenizer.json") in closure("stages.prompts")


def test_a_folder_is_listed_only_when_the_stage_runs_all_of_it():
    deps = code_deps("stages.activations")
    assert "erasure/models" in deps  # every loader can run
    assert "erasure/analysis" not in deps and "erasure/analysis/fig4.py" not in deps  # a drawing stage's module
    for dep in deps:
        if (ROOT / dep).is_dir():
            files = {p.relative_to(ROOT) for p in (ROOT / dep).rglob("*.py")}
            assert files <= closure("stages.activations"), dep


def test_design_md_module_table_is_what_the_script_writes():
    """docs/DESIGN.md's module table is generated from the modules' docstrings and public names
    (`python -m scripts.design_map`), so it cannot drift from the code."""
    result = subprocess.run([sys.executable, "-m", "scripts.design_map", "--check"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, "docs/DESIGN.md's module table is stale: run `python -m scripts.design_map`\n" + \
        result.stdout[-3000:]
