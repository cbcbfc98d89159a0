"""Files in and out: YAML and JSON read strictly (a fault named with its line and column), outputs written
atomically (a stage that fails leaves no half-written file that DVC could cache).

Every output is written to one temp sibling, `.<name>.tmp`, and renamed onto its path. The name does not depend on
the process, so a run killed with SIGKILL leaves a temp that the next run of the stage removes before writing
(.dvcignore and .gitignore hide it meanwhile). An OS fault while writing (disk full, read-only file system) is a
one-line DataError naming the output.
"""
from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import yaml

from erasure.errors import DataError

TMP_SUFFIX = ".tmp"  # .dvcignore and .gitignore name the same pattern: .*.tmp


def temp_path(path: Path) -> Path:
    """The one temp name of an output: a killed run's leftover is found (and removed) by the next run."""
    return path.with_name(f".{path.name}{TMP_SUFFIX}")


def os_error_text(err: OSError) -> str:
    """`No space left on device (ENOSPC)`: the OS's words and the errno name users search for."""
    name = errno.errorcode.get(err.errno) if err.errno is not None else None
    return f"{err.strerror or err}" + (f" ({name})" if name else "")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield the temp sibling of `path` (for a file or a directory); rename it onto `path` only on success.

    A leftover temp of a killed run is removed first; the temp is removed on any failure.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove(tmp)
        yield tmp
        _remove(path)
        os.replace(tmp, path)
    except OSError as err:
        raise DataError(f"cannot write {path}: {os_error_text(err)}") from None
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def round_significant(obj: Any, digits: int) -> Any:
    """Every float in a JSON-like structure rounded to `digits` significant digits (params
    `outputs.significant_digits`): a rerun that differs in the last float digits then writes the same bytes."""
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}") if math.isfinite(obj) else obj
    if isinstance(obj, dict):
        return {key: round_significant(value, digits) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [round_significant(value, digits) for value in obj]
    return obj


def json_text(obj: Any, digits: int | None = None) -> str:
    """JSON, indented; with `digits`, every float rounded to that many significant digits first."""
    if digits is not None:
        obj = round_significant(obj, digits)
    return json.dumps(obj, indent=2, sort_keys=False) + "\n"


def atomic_write_json(path: str | Path, obj: Any, digits: int | None = None) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json_text(obj, digits))


def staged(outputs: ExitStack, path: str | Path, write: Callable[[Path], Any]) -> None:
    """`write` the output `path` into its temp now; it is renamed into place when `outputs` (an ExitStack holding
    a stage's outputs, each entered with atomic_path) closes without error, so a fault in any output leaves none of
    them. An OS fault while writing names `path`."""
    path = Path(path)
    tmp = outputs.enter_context(atomic_path(path))
    try:
        write(tmp)
    except OSError as err:
        raise DataError(f"cannot write {path}: {os_error_text(err)}") from None


def atomic_write_csv(path: str | Path, rows: list[dict], digits: int, fieldnames: list[str] | None = None) -> None:
    """Rows of one table (the keys of the first row are the header) as CSV, floats rounded like the metrics.
    With `fieldnames`, the header is given and `rows` may be empty (a figure that does not apply to the run)."""
    if not rows and fieldnames is None:
        raise ValueError(f"{path}: no rows to write")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fieldnames or list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(round_significant(rows, digits))
    atomic_write_text(path, out.getvalue())


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml when built in: ~10x faster
    """YAML that refuses a key given twice in one mapping (PyYAML would silently keep the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice", mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_text(path: Path, missing: str = "run from the repository root", corrupt: str = "save it as UTF-8") -> str:
    """A UTF-8 text file, or a DataError naming it: absent (then `missing` says what to do), unreadable, or not
    UTF-8 (then `corrupt` does)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path} not found: {missing}") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text (byte {err.start}): {corrupt}") from None
    except OSError as err:
        raise DataError(f"{path} cannot be read: {os_error_text(err)}") from None


def read_json(path: Path, remedy: str) -> Any:
    """A JSON file, or a DataError naming it and the line and column of the fault; `remedy` says how to remake it."""
    text = read_text(path, remedy, remedy)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON at line {err.lineno}, column {err.colno} ({err.msg}): "
                        f"{remedy}") from None


def read_yaml(path: Path) -> Any:
    """A YAML file, or a DataError with the line and column of the fault."""
    text = read_text(path)
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise DataError(f"{path} is not valid YAML{where}: {problem}") from None


def sha256_file(path: str | Path) -> str:
    """sha256 of a file, read in 1 MiB blocks (weights files are hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
