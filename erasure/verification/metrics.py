"""Metric files and dotted keys: `file:dotted.key` lookups with `{...}` placeholders, for claims and the paper.

Keys may contain `{...}` placeholders, resolved in this order: a loop variable (`{h}`), a field of the planted
truth (`{truth.token_head}`), or a dotted key of the same metrics file (`{prompts.p1.writer}`).
"""
from __future__ import annotations

import re
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from erasure.errors import ClaimError, DataError
from erasure.io import read_json

PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


class MissingMetric(Exception):
    """A metric file or key a claim needs is absent (or null)."""


def split_key(key: Any, where: str = "") -> tuple[str, str]:
    if not isinstance(key, str) or ":" not in key:
        raise ClaimError(f"{where}: metric key {key!r} must be `file:dotted.key`")
    file, dotted = key.split(":", 1)
    if not file or not dotted:
        raise ClaimError(f"{where}: metric key {key!r} must be `file:dotted.key`")
    return file, dotted


class Metrics:
    """Metric files under a root directory, loaded on demand; resolves `file:dotted.key` with placeholders.

    Given `files` (an in-memory set, for tests), nothing is read from disk: an absent file is absent.
    """

    def __init__(self, root: str | Path = ".", files: dict[str, Any] | None = None):
        self.root = Path(root)
        self._cache: dict[str, Any] = dict(files or {})
        self._from_disk = files is None

    def file(self, name: str) -> Any:
        if name not in self._cache and not self._from_disk:
            return None
        if name not in self._cache:
            path = self.root / name
            if not path.exists():
                self._cache[name] = None
            else:
                remedy = "re-run the stage that writes it (`dvc repro`)"
                data = read_json(path, remedy)
                if not isinstance(data, dict):
                    raise DataError(f"{path} holds a {type(data).__name__}, not a JSON object of metrics: {remedy}")
                self._cache[name] = data
        return self._cache[name]

    def model_of(self, name: str) -> str | None:
        data = self.file(name)
        return data.get("model") if isinstance(data, dict) else None

    def get(self, key: str, env: dict | None = None) -> Any:
        file, dotted = split_key(key)
        data = self.file(file)
        if data is None:
            raise MissingMetric(f"{file} does not exist")
        dotted = self.expand(dotted, file, env)
        value = lookup(data, dotted)
        if value is MISSING:
            raise MissingMetric(f"{file} has no key {dotted}")
        if value is None:
            raise MissingMetric(f"{file}:{dotted} is null")
        return value

    def expand(self, text: str, file: str | None, env: dict | None = None) -> str:
        env = env or {}

        def sub(match: re.Match) -> str:
            name = match.group(1)
            if name in env:
                return str(env[name])
            if name.startswith("truth."):
                truth = env.get("__truth__")
                if truth is None:
                    raise MissingMetric(f"{{{name}}} needs the planted truth")
                value = lookup(truth_dict(truth), name[len("truth."):])
            else:
                data = self.file(file) if file else None
                if data is None:
                    raise MissingMetric(f"{file} does not exist")
                value = lookup(data, name)
            if value is MISSING or value is None:
                raise MissingMetric(f"placeholder {{{name}}} does not resolve in {file}")
            return str(value)

        return PLACEHOLDER.sub(sub, text)


MISSING = object()


def lookup(data: Any, dotted: str) -> Any:
    """data["a"]["b"][0] for "a.b.0"; `MISSING` when absent."""
    node = data
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return MISSING
    return node


def truth_dict(truth: Any) -> dict:
    if isinstance(truth, dict):
        return truth
    if is_dataclass(truth):
        return asdict(truth)
    return dict(vars(truth))
