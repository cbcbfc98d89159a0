"""Write each dvc.yaml stage's code deps from its import closure, so that changing a file a stage runs reruns it and
nothing else does. The list is generated, never kept by hand:

    python -m scripts.stage_deps           # rewrite the code deps in dvc.yaml
    python -m scripts.stage_deps --check   # exit 1 (and show what differs) when dvc.yaml is not what it would write

The closure of `python -m stages.X` is computed statically: every `import` / `from ... import` anywhere in a module
(inside functions too: stages import heavy modules inside main()), resolved to files of this checkout, plus the
`__init__.py` of every package on the way (Python runs them), plus the files of a sibling `assets` folder that a
module names. A package folder all of whose files are in the closure is listed as the folder. Other deps (data,
metrics, templates, paper/claims.yaml) are kept as they are, after the code.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

from scripts.generated_file import write_or_check

ROOT = Path(__file__).resolve().parents[1]
DVC_YAML = ROOT / "dvc.yaml"
CODE_ROOTS = ("stages/", "erasure/")


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
    """Every project file (relative to the checkout) that running `python -m module` may execute or read."""
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
    if not cmd.startswith(prefix):
        raise SystemExit(f"error: stage cmd {cmd!r} is not `python -m stages.X`")
    return cmd[len(prefix):].split()[0]


def _package_files(folder: Path) -> set[Path]:
    return {p.relative_to(ROOT) for p in (ROOT / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc")}


def code_deps(module: str) -> list[str]:
    """The closure as dvc.yaml deps: whole package folders where the stage runs every file of one (below erasure/),
    else the files; stages/ first, then erasure/, each sorted."""
    files = closure(module)
    folders = sorted({p.parent for p in files if p.parent != Path("erasure") and p.parts[0] == "erasure"},
                     key=lambda f: len(f.parts))
    whole: list[Path] = []
    for folder in folders:
        if any(w in folder.parents for w in whole):
            continue
        if _package_files(folder) <= files:
            whole.append(folder)
    listed = [str(w) for w in whole] + [str(f) for f in files if not any(w in f.parents for w in whole)]
    return sorted(listed, key=lambda d: (not d.startswith("stages/"), d))


_DEPS = re.compile(r"^(    deps:\n)((?:      - .*\n)+)", re.M)


def rewrite(text: str, stages: dict) -> str:
    """dvc.yaml with each stage's code deps replaced by its closure (the other deps kept, after them)."""
    out, pos = [], 0
    for name, spec in stages.items():
        start = re.search(rf"^  {re.escape(name)}:", text[pos:], re.M)
        if start is None:
            raise SystemExit(f"error: dvc.yaml: stage {name} not found in the text")
        match = _DEPS.search(text, pos + start.end())
        if match is None:
            continue
        entries = [line[len("      - "):] for line in match.group(2).splitlines()]
        data = [e for e in entries if not e.startswith(CODE_ROOTS)]
        lines = [f"      - {d}\n" for d in code_deps(stage_module(spec["cmd"])) + data]
        out += [text[pos:match.start(2)], "".join(lines)]
        pos = match.end(2)
    return "".join(out) + text[pos:]


def main() -> None:
    import yaml

    text = DVC_YAML.read_text()
    stages = yaml.safe_load(text)["stages"]
    write_or_check(DVC_YAML, rewrite(text, stages), __doc__.splitlines()[0], f"code deps of {len(stages)} stages")


if __name__ == "__main__":
    main()
