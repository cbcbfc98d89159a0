"""A generated file's one command-line contract (scripts/stage_deps.py, scripts/design_map.py): write the new text,
or with `--check` print how the file differs from it and exit 1."""
from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path


def write_or_check(path: Path, new: str, description: str, what: str) -> None:
    """`description` is the command's help; `what` names the generated part in its last line."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help=f"only compare; exit 1 when {path.name} differs")
    args = parser.parse_args()
    text = path.read_text()
    if args.check:
        if new != text:
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True), path.name,
                                                       f"{path.name} (generated)"))
            sys.exit(1)
        return
    if new != text:
        path.write_text(new)
    print(f"{path.name}: {what} " + ("rewritten" if new != text else "already up to date"))
