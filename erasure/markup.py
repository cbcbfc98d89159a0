"""Text that comes from data (token strings, prompt text, names read from metrics) made inert for Markdown and HTML,
in one place: the paper's filters (erasure.paper.values) and the verification report call these, so a vocabulary
entry such as `</td><script>` or `` `|**x**` `` shows as its characters, never as markup, in paper.md,
paper.html and verification.md (read raw, on GitHub, or through python-markdown).

Every character that can open Markdown or HTML markup inline is written as a numeric character reference
(`<` -> `&#60;`): both python-markdown and GitHub show the character, and a reference is never markup, a table
cell separator (`|`) or an emphasis marker. Letters, digits, spaces and other characters are left as they are, so
ordinary text reads the same in the .md file.
"""
from __future__ import annotations

import re

_MARKUP = re.compile(r"[&<>\\`*_\[\]|~]")  # inline openers: HTML, entities, emphasis, code, links, table cells
_BREAKS = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}  # a line break would end a table cell: shown as \n


def md_text(text: object) -> str:
    """`text` as inert inline Markdown/HTML: line breaks and tabs shown as `\\n`, `\\t`; markup characters as
    character references."""
    text = "".join(_BREAKS.get(c, c) for c in str(text))
    return _MARKUP.sub(lambda m: f"&#{ord(m.group(0))};", text)


def md_code(text: object) -> str:
    """`text` in a code font, inert: an HTML <code> element (a Markdown code span cannot hold every backtick
    sequence, and inside one a character reference would show literally)."""
    return f"<code>{md_text(text)}</code>"
