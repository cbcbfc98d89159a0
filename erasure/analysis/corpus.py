"""Offline text/code corpus built from the running Python's own standard library.

gelu-4l was trained on 80% C4 web text and 20% Python code. Neither data set is reachable offline, so
the planted-4l model (and its tokenizer) use a stand-in that every Python 3.11 install already has on
disk, with no downloads and no apt packages:

- ``"code"``: the standard library's own ``.py`` source files, one document per file, in sorted path
  order. Directories named ``test``, ``tests``, ``idle_test``, ``site-packages`` and ``__pycache__`` are
  skipped (this covers ``test/``, ``idlelib/idle_test/``, ``lib2to3/tests/``, ``unittest/test/``, ...).
- ``"text"``: English prose. First the values of ``pydoc_data.topics.topics`` (the help() topics, which are
  the language reference in plain text), one document each, sorted by key; then every module, class and
  function docstring (``ast.get_docstring``, cleaned) of the same files as ``"code"``, in file order and,
  within a file, in ``ast.walk`` order (walked over statements only: ``statement_walk``), keeping only
  docstrings of at least ``MIN_DOCSTRING_CHARS`` (200) characters. Files that do not parse are skipped for
  docstrings (kept for ``"code"``).

Sizes measured on CPython 3.11.7 (pyenv build), with the planted-4l tokenizer
(``erasure/models/assets/planted_tokenizer.json``, no BOS/EOS counted):

- ``"text"``: 2,517 documents, 1.79 M characters, 430 k tokens (79 pydoc topics: 0.46 M characters, 106 k
  tokens; 2,438 docstrings: 1.32 M characters, 324 k tokens). That covers 240 rows x 1024 tokens (246 k).
- ``"code"``: 731 files, 12.1 M characters, 3.24 M tokens.

Iterating ``"text"`` parses the standard library with ``ast`` once per process (about 1 s; the docstrings
are then cached in memory); ``"code"`` only reads files.

The exact content depends on the Python patch release (the standard library changes between releases),
so prompt sets built from it must be hashed (``data/prompts/tokens.json`` does this). The order is
deterministic for a given install: everything is sorted, nothing is random.
"""

from __future__ import annotations

import ast
import os
import sysconfig
import tokenize
from collections import deque
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Literal

__all__ = ["iter_documents", "stdlib_source_files", "KINDS", "MIN_DOCSTRING_CHARS"]

KINDS: tuple[str, ...] = ("text", "code")
MIN_DOCSTRING_CHARS = 200
_EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"})


def _stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_source_files() -> list[Path]:
    """Sorted list of the standard library's ``.py`` files, test directories and site-packages excluded."""
    root = _stdlib_dir()
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        # prune in place, sorted, so the walk itself is deterministic
        dirnames[:] = sorted(d for d in dirnames if d not in _EXCLUDED_DIRS)
        for name in filenames:
            if name.endswith(".py"):
                files.append(Path(dirpath) / name)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _read_source(path: Path) -> str | None:
    """Source text, decoded with the file's own encoding cookie; None if it cannot be decoded."""
    try:
        with tokenize.open(path) as fh:
            return fh.read()
    except (SyntaxError, UnicodeDecodeError, OSError):
        return None


def _iter_code() -> Iterator[str]:
    for path in stdlib_source_files():
        src = _read_source(path)
        if src and src.strip():
            yield src


def _iter_topics() -> Iterator[str]:
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distro builds ship pydoc_data separately; docstrings alone still suffice
        return
    for key in sorted(topics):
        text = topics[key].strip()
        if text:
            yield text


_DOC_NODES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


@lru_cache(maxsize=1)
def _docstrings() -> tuple[str, ...]:
    """All kept docstrings (cached: parsing the standard library takes a few seconds)."""
    return tuple(_iter_docstrings_uncached())


def _iter_docstrings_uncached() -> Iterator[str]:
    for path in stdlib_source_files():
        src = _read_source(path)
        if not src:
            continue
        try:
            tree = ast.parse(src)
        except (SyntaxError, ValueError):
            continue
        for node in statement_walk(tree):
            if isinstance(node, _DOC_NODES):
                doc = ast.get_docstring(node, clean=True)
                if doc and len(doc) >= MIN_DOCSTRING_CHARS:
                    yield doc


_STATEMENT_HOLDERS = (ast.stmt, ast.excepthandler, ast.match_case)


def statement_walk(tree: ast.AST) -> Iterator[ast.AST]:
    """`ast.walk` (breadth first, the same order) restricted to the root and the nodes that hold statements.

    A docstring's node (module, class, function) is a statement whose ancestors all hold statements, and no
    statement sits inside an expression, so the kept nodes come out in ast.walk's order while the expressions
    (most of a tree) are never visited: about half the time of finding the standard library's docstrings."""
    todo = deque([tree])
    while todo:
        node = todo.popleft()
        todo.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, _STATEMENT_HOLDERS))
        yield node


def iter_documents(kind: Literal["text", "code"]) -> Iterator[str]:
    """Yield the documents of one kind of the offline corpus, in a deterministic order.

    ``kind="text"``: pydoc topics (sorted keys), then standard-library docstrings of >= 200 characters.
    ``kind="code"``: the standard library's ``.py`` files, one per document, sorted by path.
    Raises ``ValueError`` (naming the parameter and the allowed values) for any other ``kind``.
    """
    if kind == "text":
        return _iter_text()
    if kind == "code":
        return _iter_code()
    raise ValueError(f"kind must be one of {', '.join(repr(k) for k in KINDS)}; got {kind!r}")


def _iter_text() -> Iterator[str]:
    yield from _iter_topics()
    yield from _docstrings()
