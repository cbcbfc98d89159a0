"""Provenance of a metric file: the dvc.yaml stage that writes it and its md5 in dvc.lock (and on disk)."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from erasure import io
from erasure.errors import DataError
from erasure.verification.metrics import MISSING, Metrics, lookup


def file_md5(path: Path) -> str | None:
    if not path.is_file():
        return None
    return hashlib.md5(path.read_bytes()).hexdigest()


def resolve_templated(text: str, params: dict) -> str:
    """DVC's `${a.b}` interpolation from params.yaml (only what dvc.yaml of this repo uses)."""
    def sub(match: re.Match) -> str:
        value = lookup(params, match.group(1).strip())
        return match.group(0) if value is MISSING else str(value)
    return re.sub(r"\$\{([^}]+)\}", sub, text)


def _entry_paths(entries: Any) -> list[str]:
    paths = []
    for item in entries or []:
        if isinstance(item, str):
            paths.append(item)
        elif isinstance(item, dict):
            paths += list(item)
    return paths


def stage_outputs(dvc_yaml: dict) -> dict[str, str]:
    """path -> stage name for every outs/metrics/plots entry of dvc.yaml."""
    owners: dict[str, str] = {}
    for name, stage in (dvc_yaml.get("stages") or {}).items():
        for section in ("outs", "metrics", "plots"):
            for path in _entry_paths(stage.get(section)):
                owners[path] = name
    return owners


def lock_md5s(dvc_lock: dict | None) -> dict[str, str]:
    md5s: dict[str, str] = {}
    for stage in ((dvc_lock or {}).get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if "md5" in out:
                md5s[out["path"]] = out["md5"]
    return md5s


def read_yaml(path: Path) -> dict | None:
    """dvc.yaml or dvc.lock (None when absent: before the first run there is no lock)."""
    if not path.exists():
        return None
    data = io.read_yaml(path) or {}
    if not isinstance(data, dict):
        raise DataError(f"{path} must be a YAML mapping, not {type(data).__name__}")
    return data


def provenance(root: Path, files: list[str], dvc_yaml: dict | None, dvc_lock: dict | None,
               metrics: Metrics) -> list[dict]:
    owners = stage_outputs(dvc_yaml or {})
    md5s = lock_md5s(dvc_lock)
    out = []
    for path in files:
        actual = file_md5(root / path)
        lock = md5s.get(path)
        out.append({"path": path, "stage": owners.get(path), "lock_md5": lock, "md5": actual,
                    "lock_matches": None if lock is None or actual is None else lock == actual,
                    "model": metrics.model_of(path)})
    return out
