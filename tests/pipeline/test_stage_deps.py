"""dvc.yaml deps match each stage's code: every project file a stage imports (following imports inside functions
too) is a dep of that stage, so changing it makes `dvc repro` rerun the stage; and no code dep is imported by
nothing (a stale dep only causes needless reruns, but it hides that the list is not the code's).

The import closure is computed statically from the stage's `cmd` module (`python -m stages.X`): every `import`
and `from ... import` anywhere in a module, resolved to files of this checkout, plus the `__init__.py` of every
package on the way (Python runs them). A module that names its sibling `assets` folder reads the files in it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())


def module_file(name: str) -> Path | None:
    """The checkout's file of a dotted module name (a module, or a package's __init__.py), else None."""
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(path: Path) -> set[str]:
    """Dotted names of everything `path` imports, at any depth of its code (functions, branches included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from pkg import submodule`
    return names


def closure(module: str) -> set[Path]:
    """Every project file that running `python -m module` may execute or read."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # the packages on the way, then the module itself
            path = module_file(".".join(parts[:i]))
            if path is None or path in seen:
                continue
            seen.add(path)
            todo += sorted(imported_modules(path))
    assets = {f for p in seen if '"assets"' in p.read_text() for f in (p.parent / "assets").glob("*") if f.is_file()}
    return {p.relative_to(ROOT) for p in seen | assets}


def stage_module(cmd: str) -> str:
    prefix = "python -m "
    assert cmd.startswith(prefix), f"stage cmd {cmd!r} is not `python -m stages.X`"
    return cmd[len(prefix):].split()[0]


def deps_of(stage: dict) -> list[Path]:
    return [Path(d) for d in stage.get("deps", [])]


def covered(file: Path, deps: list[Path]) -> bool:
    return any(file == d or d in file.parents for d in deps)


STAGES = sorted(DVC_YAML["stages"])


@pytest.mark.parametrize("stage", STAGES)
def test_every_imported_project_file_is_a_dep(stage):
    spec = DVC_YAML["stages"][stage]
    deps = deps_of(spec)
    missing = sorted(str(f) for f in closure(stage_module(spec["cmd"])) if not covered(f, deps))
    assert not missing, f"stage {stage}: imported but not in its dvc.yaml deps: {', '.join(missing)}"


@pytest.mark.parametrize("stage", STAGES)
def test_every_code_dep_is_imported(stage):
    spec = DVC_YAML["stages"][stage]
    files = closure(stage_module(spec["cmd"]))
    code_deps = []
    for dep in deps_of(spec):
        if (ROOT / dep).is_dir():
            code_deps += [p.relative_to(ROOT) for p in (ROOT / dep).rglob("*.py")]
        elif dep.suffix == ".py":
            code_deps.append(dep)
    stale = sorted(str(d) for d in code_deps if d not in files)
    assert not stale, f"stage {stage}: deps that the stage never imports: {', '.join(stale)}"


def test_the_closure_follows_imports_inside_functions(tmp_path):
    """The rule the deps test stands on: an import inside a function body counts (stages import heavy modules
    inside main())."""
    assert Path("erasure/models/load.py") in closure("stages.prompts")  # imported inside stages.prompts.main
    assert Path("erasure/models/planted.py") in closure("stages.prompts")  # inside load_model's planted branch
    assert Path("erasure/models/assets/planted_tokenizer.json") in closure("stages.prompts")
