"""Write docs/DESIGN.md's module table from the code, so it cannot drift from it:

    python -m scripts.design_map           # rewrite the table between its two markers
    python -m scripts.design_map --check   # exit 1 (and show what differs) when the table is not what it would write

One row per module of erasure/: its job (the first sentence of its docstring) and its public names (module-level
functions, classes and UPPER_CASE constants not starting with `_`, in the order they are defined). Read statically
with `ast`: nothing is imported or run.
"""
from __future__ import annotations

import ast
from pathlib import Path

from scripts.generated_file import write_or_check

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "DESIGN.md"
BEGIN = "<!-- module table: written by `python -m scripts.design_map`; edit the docstrings, not this table -->"
END = "<!-- end of the module table -->"


def first_sentence(doc: str | None) -> str:
    """The docstring's first sentence, on one line (up to the first '. ' or the first blank line)."""
    if not doc:
        return "(no docstring)"
    text = " ".join(doc.strip().split("\n\n")[0].split())
    cut = text.find(". ")
    return (text[: cut + 1] if cut >= 0 else text).replace("|", "\\|")


def public_names(tree: ast.Module) -> list[str]:
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper() and not t.id.startswith("_")]
    return names


def table() -> str:
    rows = ["| module | its one job (its docstring) | public names |", "|---|---|---|"]
    for path in sorted((ROOT / "erasure").rglob("*.py")):
        if path.name == "__init__.py" and len(path.read_text().strip().splitlines()) <= 1:
            continue  # a package marker
        tree = ast.parse(path.read_text(), filename=str(path))
        names = ", ".join(f"`{n}`" for n in public_names(tree)) or "—"
        rows.append(f"| `{path.relative_to(ROOT)}` | {first_sentence(ast.get_docstring(tree))} | {names} |")
    return "\n".join(rows)


def rewrite(text: str) -> str:
    if BEGIN not in text or END not in text:
        raise SystemExit(f"error: {DESIGN.relative_to(ROOT)} lacks the module table's markers ({BEGIN!r} ... {END!r})")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


def main() -> None:
    write_or_check(DESIGN, rewrite(DESIGN.read_text()), __doc__.splitlines()[0], "module table")


if __name__ == "__main__":
    main()
