"""The offline corpus: deterministic, stdlib-only, large enough for paper-scale prompt sets."""

from __future__ import annotations

import ast
import itertools
import sysconfig
from pathlib import Path

import pytest

from erasure.analysis.corpus import MIN_DOCSTRING_CHARS, iter_documents, statement_walk, stdlib_source_files
from erasure.models.planted import TOKENIZER_PATH


def test_unknown_kind_names_param_and_allowed_values():
    with pytest.raises(ValueError) as err:
        iter_documents("web")  # type: ignore[arg-type]
    msg = str(err.value)
    assert "kind" in msg and "'text'" in msg and "'code'" in msg and "'web'" in msg


def test_code_is_stdlib_sources_without_tests():
    files = stdlib_source_files()
    root = Path(sysconfig.get_paths()["stdlib"])
    assert len(files) > 300
    assert files == sorted(files, key=lambda p: p.relative_to(root).as_posix())
    for f in files:
        parts = set(f.relative_to(root).parts[:-1])
        assert not parts & {"test", "tests", "idle_test", "site-packages", "__pycache__"}, f
    names = {f.relative_to(root).as_posix() for f in files}
    assert {"os.py", "json/__init__.py", "collections/__init__.py"} <= names


def test_code_documents_deterministic():
    a = list(itertools.islice(iter_documents("code"), 40))
    b = list(itertools.islice(iter_documents("code"), 40))
    assert a == b and len(a) == 40
    assert all(isinstance(d, str) and d.strip() for d in a)
    assert any("def " in d or "import " in d for d in a)


def test_text_starts_with_pydoc_topics_then_long_docstrings():
    from pydoc_data.topics import topics

    docs = list(iter_documents("text"))
    assert docs == list(iter_documents("text"))  # deterministic (and cached)
    n = len(topics)
    assert docs[:n] == [topics[k].strip() for k in sorted(topics) if topics[k].strip()]
    assert len(docs) > n + 1000
    assert all(len(d) >= MIN_DOCSTRING_CHARS for d in docs[n:])
    assert sum(map(len, docs)) > 1_000_000


def test_text_has_enough_tokens_for_paper_scale():
    """240 text rows x 1024 tokens (1023 after BOS) must fit in the text corpus."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(TOKENIZER_PATH))
    n_tokens = sum(len(e.ids) + 1 for e in tok.encode_batch(list(iter_documents("text"))))  # + EOS per doc
    assert n_tokens >= 240 * 1023


def test_the_statement_walk_is_ast_walk_over_statement_holders():
    """Against ast.walk itself, on the first 60 stdlib files and a snippet with docstrings nested in if, try,
    with, match and nested classes: the same nodes of those kinds, in the same order."""
    kinds = (ast.Module, ast.stmt, ast.excepthandler, ast.match_case)
    snippet = (
        'def a():\n    "A."\n    if x:\n        class B:\n            "B."\n            def c(self): "C."\n'
        'try:\n    pass\nexcept E:\n    def d(): "D."\nwith f():\n    def e(): "E."\n'
        'match y:\n    case 1:\n        def g(): "G."\nx = [lambda: 1 for _ in ()]\n'
    )
    trees = [ast.parse(snippet)] + [ast.parse(p.read_text(encoding="utf-8", errors="replace"))
                                     for p in stdlib_source_files()[:150]]
    for tree in trees:
        assert list(statement_walk(tree)) == [n for n in ast.walk(tree) if isinstance(n, kinds)]
