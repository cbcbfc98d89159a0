"""Files in and out: YAML read as DVC reads it and JSON read strictly (a fault named with its line and column), and
outputs replaced as one set (a stage that fails leaves its previous outputs, never a mix or a half-written file
that DVC could cache).

Every output is written to one temp sibling, `.<name>.tmp`, and renamed onto its path when the stage's whole set
is written (`OutputSet`). The name does not depend on the process, so a run killed with SIGKILL leaves a temp that
the next run of the stage removes before writing (.dvcignore and .gitignore hide it meanwhile). An OS fault while
writing (disk full, read-only file system) is a one-line DataError naming the output. No metrics or plot file holds
NaN or inf: a writer refuses them (`json_text`, `csv_text`) and a reader too (`read_json`).
"""
from __future__ import annotations

import contextlib
import copy
import csv
import errno
import functools
import hashlib
import io
import json
import math
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.constructor import DuplicateKeyError

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


def first_non_finite(obj: Any, where: str = "") -> str | None:
    """The dotted key of the first NaN/inf float in a JSON-like structure (`a.b[2]`), or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "the value"
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for key, value in items:
        found = first_non_finite(value, f"{where}[{key}]" if isinstance(key, int) else
                                 f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def _refuse_non_finite(obj: Any, path: str | Path | None) -> None:
    """A metrics or plot file never holds NaN/inf: a statistic that can be undefined is written as null with its
    reason by the code that computes it (docs/methods.md, "Undefined statistics"); anything else is a bug or
    degenerate input, stopped here in one line."""
    bad = first_non_finite(obj)
    if bad is not None:
        name = path if path is not None else "an output"
        raise DataError(f"cannot write {name}: {bad} is not finite (NaN/inf); the inputs are degenerate for this "
                        "statistic")


def json_text(obj: Any, digits: int | None = None, path: str | Path | None = None) -> str:
    """JSON, indented; with `digits`, every float rounded to that many significant digits first. A NaN/inf
    anywhere is a DataError naming `path` and the key (strict JSON has no NaN)."""
    if digits is not None:
        obj = round_significant(obj, digits)
    _refuse_non_finite(obj, path)
    return json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"


def csv_text(rows: list[dict], digits: int, path: str | Path | None = None,
             fieldnames: list[str] | None = None) -> str:
    """Rows of one table (the keys of the first row are the header) as CSV, floats rounded like the metrics; a
    NaN/inf cell is a DataError naming `path`. An empty table is one too, unless `fieldnames` gives its header (a
    figure that does not apply to the run: its plot data is the header alone)."""
    if not rows and fieldnames is None:
        raise DataError(f"cannot write {path or 'a table'}: no rows")
    rows = round_significant(rows, digits)
    _refuse_non_finite(rows, path)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fieldnames or list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def atomic_write_json(path: str | Path, obj: Any, digits: int | None = None) -> None:
    text = json_text(obj, digits, path)
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def backup_path(path: Path) -> Path:
    """Where OutputSet keeps an output's previous version while it renames the new set into place."""
    return path.with_name(f".{path.name}.old{TMP_SUFFIX}")


class OutputSet:
    """A stage's outputs, replaced as one set. Each is written into its temp sibling when added; when the `with`
    block ends without error the set is committed: every previous output is moved aside (`.<name>.old.tmp`), every
    temp renamed into place, then the old versions removed. Any fault -- disk full or a read-only file system
    while writing, a rename refused (a read-only file, a mount point), bad data, SIGTERM -- removes the temps and
    puts back every previous output, so DVC never holds outputs of two runs.

        with OutputSet() as out:
            out.json(METRICS["fig1_resid"], metrics)
            out.file(FIGURES["fig1"], lambda tmp: fig1(metrics, ..., tmp, dpi))
    """

    def __init__(self) -> None:
        self._outputs: list[tuple[Path, Path]] = []  # (output, its temp), in the order written

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is None:
            self._commit()
        else:
            self._discard()
        return False

    def file(self, path: str | Path, write: Callable[[Path], Any]) -> Any:
        """`write(tmp)` writes the output (a file, or a folder it makes) at the temp path it is given, now;
        returns what `write` returns. An OS fault while writing names `path`."""
        path = Path(path)
        tmp = temp_path(path)
        self._outputs.append((path, tmp))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _remove(tmp)  # a killed run's leftovers
            _remove(backup_path(path))
            return write(tmp)
        except OSError as err:
            raise DataError(f"cannot write {path}: {os_error_text(err)}") from None

    def text(self, path: str | Path, text: str) -> None:
        self.file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def json(self, path: str | Path, obj: Any, digits: int | None = None) -> None:
        self.text(path, json_text(obj, digits, path))

    def csv(self, path: str | Path, rows: list[dict], digits: int, fieldnames: list[str] | None = None) -> None:
        self.text(path, csv_text(rows, digits, path, fieldnames))

    def json_folder(self, path: str | Path, rows: dict[str, dict]) -> None:
        """A folder of one small JSON file per row (`dvc metrics show` prints a row per file: metrics/headline/)."""
        def write(tmp: Path) -> None:
            tmp.mkdir()
            for name, row in rows.items():
                (tmp / f"{name}.json").write_text(json_text(row, path=Path(path) / f"{name}.json"), encoding="utf-8")
        self.file(path, write)

    def _discard(self) -> None:
        for _, tmp in self._outputs:
            _remove(tmp)

    def _commit(self) -> None:
        moved: list[Path] = []  # outputs whose previous version is aside
        placed: list[Path] = []  # outputs whose new version is in place
        current = None
        try:
            for path, _ in self._outputs:
                current = path
                if path.exists() or path.is_symlink():
                    os.replace(path, backup_path(path))
                    moved.append(path)
            for path, tmp in self._outputs:
                current = path
                os.replace(tmp, path)
                placed.append(path)
        except BaseException as err:  # OSError, or SIGTERM (erasure.stage.Terminated) mid-commit: roll back
            for path in placed:
                _remove(path)
            for path in moved:
                with contextlib.suppress(OSError):  # best effort: what cannot move back stays, hidden, aside
                    os.replace(backup_path(path), path)
            self._discard()
            if isinstance(err, OSError):
                raise DataError(f"cannot write {current}: {os_error_text(err)}") from None
            raise
        for path in moved:
            _remove(backup_path(path))


def atomic_write_csv(path: str | Path, rows: list[dict], digits: int) -> None:
    atomic_write_text(path, csv_text(rows, digits, path))


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


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


class _NonFiniteConstant(Exception):
    pass


def _refuse_constant(name: str) -> Any:
    """Python's json reads NaN, Infinity and -Infinity, which strict JSON (and every writer here) never writes."""
    raise _NonFiniteConstant(name)


def read_json(path: Path, remedy: str) -> Any:
    """A JSON file, or a DataError naming it and the line and column of the fault, or the NaN/Infinity it holds;
    `remedy` says how to remake it."""
    text = read_text(path, remedy, remedy)
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except _NonFiniteConstant as err:
        raise DataError(f"{path} holds {err.args[0]} (not JSON: an undefined statistic is null): {remedy}") from None
    except RecursionError:
        raise DataError(f"{path} is nested too deep to be one of this pipeline's files: {remedy}") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON at line {err.lineno}, column {err.colno} ({err.msg}): "
                        f"{remedy}") from None


MAX_YAML_BYTES = 1 << 20  # params.yaml is ~10 KB, dvc.lock ~50 KB: a larger file is not one of ours
MAX_YAML_DEPTH = 32  # params nest 5 deep; the parser recurses per level (deep nesting crashed it)
MAX_YAML_SCALAR = 1000  # characters of one plain scalar (a 5000-digit integer broke int conversion)


def _yaml_loader() -> Any:
    """DVC's own YAML reading (dvc.utils.serialize.parse_yaml: ruamel.yaml, typ="safe", YAML 1.2), so a value
    means the same to the stages as to `dvc params diff` and dvc.lock (`010` is 10, `yes` is a string); ruamel
    refuses a key given twice and reads merge keys `<<:`."""
    return YAML(typ="safe", pure=True)


def _check_yaml_shape(text: str, path: Path) -> None:
    """Refuse, before the composer can recurse or convert, a file too large, nested too deep, or with a huge
    plain scalar. libyaml's event parser reads any depth without recursing, in milliseconds; a syntax error it
    meets is left to the reading itself, which names it."""
    if len(text) > MAX_YAML_BYTES:
        raise DataError(f"{path} is {len(text)} characters: the limit is {MAX_YAML_BYTES}")
    depth = 0
    try:
        for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    mark = event.start_mark
                    raise DataError(f"{path} is nested more than {MAX_YAML_DEPTH} levels deep at line "
                                    f"{mark.line + 1}, column {mark.column + 1}")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif isinstance(event, yaml.ScalarEvent) and not event.style and len(event.value) > MAX_YAML_SCALAR:
                mark = event.start_mark
                raise DataError(f"{path} holds a plain value of {len(event.value)} characters at line "
                                f"{mark.line + 1}, column {mark.column + 1}: the limit is {MAX_YAML_SCALAR} "
                                "(quote a long string)")
    except yaml.YAMLError:
        return


@functools.lru_cache(maxsize=8)
def _parsed_yaml(text: str) -> Any:
    """The reading itself, once per distinct text (a stage reads params.yaml more than once; ruamel is pure
    Python, ~0.1 s for params.yaml)."""
    return _yaml_loader().load(text)


def read_yaml(path: Path) -> Any:
    """A YAML file read as DVC reads it (YAML 1.2), or a DataError naming it, with the line and column of a fault:
    a key given twice, a tag, too large or too deep a structure."""
    text = read_text(path)
    try:
        _check_yaml_shape(text, path)
        return copy.deepcopy(_parsed_yaml(text))
    except DataError:
        raise
    except DuplicateKeyError as err:
        mark = err.problem_mark
        key = re.search(r'duplicate key "(.*)" with value', err.problem or "")
        raise DataError(f"{path} is not valid YAML at line {mark.line + 1}, column {mark.column + 1}: key "
                        f"{key.group(1) if key else '?'!r} appears twice") from None
    except (YAMLError, yaml.YAMLError) as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise DataError(f"{path} is not valid YAML{where}: {problem}") from None
    except (RecursionError, ValueError) as err:  # the limits above make these unreachable; named if not
        raise DataError(f"{path} cannot be read as YAML: {str(err).splitlines()[0]}") from None


def sha256_file(path: str | Path) -> str:
    """sha256 of a file, read in 1 MiB blocks (weights files are hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
