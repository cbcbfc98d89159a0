"""Build the paper (paper/paper.md + a self-contained paper/paper.html) from the template and the metrics.

Every number in the paper comes from a template variable: the reproduced values from metrics/*.json, the paper's
values from paper/claims.yaml, provenance from dvc.yaml / params.yaml / git (erasure.paper.context); the template
may hold no hand-typed number (erasure.paper.template_rules).
"""
from __future__ import annotations

import base64
import html
import os
import re
from pathlib import Path

import jinja2
import markdown

from erasure.errors import DataError
from erasure.io import read_json, read_text
from erasure.paper.context import build_context
from erasure.paper.template_rules import hand_typed_numbers
from erasure.paper.values import (
    f_change,
    f_ci,
    f_code,
    f_md,
    f_na,
    f_names,
    f_neg,
    f_num,
    f_pct,
    f_status,
    f_tok,
    f_toks,
    f_words,
)
from erasure.paths import STYLE, TEMPLATE, VERIFICATION_JSON
from erasure.schemas import VerificationReport, check_record

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"  # the first 8 bytes of every PNG file


def make_env() -> jinja2.Environment:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(ci=f_ci, code=f_code, na=f_na, num=f_num, pct=f_pct, tok=f_tok, toks=f_toks, names=f_names,
                       words=f_words, md=f_md, change=f_change, neg=f_neg, status=f_status)
    return env


def render_markdown(template: str, context: dict) -> str:
    bad = hand_typed_numbers(template)
    if bad:
        lines = "; ".join(f"line {n}: {text[:60]!r}" for n, text in bad[:5])
        raise DataError(f"paper template has hand-typed numbers (use a variable): {lines}")
    try:
        return make_env().from_string(template).render(**context)
    except jinja2.UndefinedError as err:
        raise DataError(f"paper template uses an undefined variable: {err}") from None
    except jinja2.TemplateSyntaxError as err:
        raise DataError(f"{TEMPLATE} is not a valid template at line {err.lineno}: {err.message}") from None
    except jinja2.TemplateError as err:
        raise DataError(f"{TEMPLATE} cannot be rendered: {type(err).__name__}: {err}") from None


def to_html(md_text: str, root: str | Path, css: str, title: str) -> str:
    """Self-contained HTML: Markdown rendered with tables, figures inlined as base64 data URIs, CSS inline."""
    root = Path(root)
    body = markdown.markdown(md_text, extensions=["tables", "fenced_code", "sane_lists"], output_format="html")

    def inline(match: re.Match) -> str:
        rel = html.unescape(match.group(2))
        path = (root / "paper" / rel).resolve()
        if not path.is_file():
            return match.group(0)
        mime = "image/png" if path.suffix.lower() == ".png" else "image/" + path.suffix.lower().lstrip(".")
        raw = path.read_bytes()
        if mime == "image/png" and not raw.startswith(PNG_SIGNATURE):
            found = "0 bytes" if not raw else f"{len(raw)} bytes starting {raw[:8]!r}"
            raise DataError(f"{os.path.relpath(path, root.resolve())} is not a PNG ({found}): re-run the stage "
                            "that draws it (`dvc repro -f <stage>`)")
        data = base64.b64encode(raw).decode("ascii")
        return f'{match.group(1)}data:{mime};base64,{data}{match.group(3)}'

    body = re.sub(r'(<img[^>]*?\bsrc=")([^"]+)(")', inline, body)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n<style>\n{css}\n</style>\n</head>\n<body>\n<main>\n"
            f"{body}\n</main>\n</body>\n</html>\n")


def build(root: str | Path, params: dict, registry: dict, template: str | None = None,
          css: str | None = None) -> tuple[str, str]:
    """(markdown, html) of the paper for the metrics, figures and verification report under `root`."""
    root = Path(root)
    template = template if template is not None else read_text(root / TEMPLATE)
    css = css if css is not None else (read_text(root / STYLE) if (root / STYLE).exists() else "")
    ver_path = root / VERIFICATION_JSON
    verification = None
    if ver_path.exists():
        remedy = "re-run `dvc repro verify`"
        verification = read_json(ver_path, remedy)
        check_record(verification, VerificationReport, ver_path, remedy)  # the keys the paper's table reads
    context = build_context(root, params, registry, verification)
    md_text = render_markdown(template, context)
    title = f"{registry.get('paper', {}).get('title', 'paper')}: a reproduction on {params.get('model')}"
    return md_text, to_html(md_text, root, css, title)
