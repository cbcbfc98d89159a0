"""The paper template's one rule: every number comes from a template variable, none is typed by hand.

`hand_typed_numbers` checks the template source: outside `{{ }}`, `{% %}` and `{# #}` no numeric character may
appear except in `ALLOWED_WITH_DIGITS` (model names, "Fig N", "top-2", hash names), and inside a tag no numeric
literal may appear except formatting arguments and indexes (`num(3)`, `[0]`). The build refuses a template that
breaks the rule.
"""
from __future__ import annotations

import re

# The only places a digit may appear in the template outside Jinja tags.
ALLOWED_WITH_DIGITS = [
    r"gelu-4l", r"GELU-4L", r"planted-4l", r"smollm2-135m", r"SmolLM2-135M", r"gemma3-270m", r"gpt2-small",
    r"\bFigs?\.? \d+(?:[-–]\d+)?\b",  # figure references: Fig 1, Figs 1-3
    r"\btop-2\b",  # the method's name: the top-2 logit difference
    r"\bsha256\b", r"\bmd5\b",  # hash names
]

_JINJA_TAGS = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)

_TAG_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_TAG_FORMAT_ARG = re.compile(r"\(\s*\d+\s*\)|\[\s*-?\d+\s*\]")  # num(3), pct(1), [0], [-1]


def _literal_in_tag(tag: str) -> bool:
    """A tag holds a hand-typed number: a digit left after removing names (fig1_resid, q87_5_low) and formatting
    arguments / indexes (num(3), [0]); so `{{ 0.91 }}` and `{{ "0.91" }}` are caught, `{{ x | num(2) }}` is not."""
    if tag.startswith("{#"):
        return False
    body = _TAG_FORMAT_ARG.sub("", _TAG_IDENT.sub("", tag))
    return any(ch.isnumeric() for ch in body)


def hand_typed_numbers(template: str) -> list[tuple[int, str]]:
    """(line number, line) of every number typed into the template by hand: a digit outside Jinja tags that is
    not in the allow-list, or a numeric literal inside a tag."""
    def blank(match: re.Match) -> str:  # keep line numbers: replace a tag by its newlines only
        if _literal_in_tag(match.group(0)):
            return "#" + "\n" * match.group(0).count("\n") + "\u2460"  # a numeric marker on the tag's last line
        return "\n" * match.group(0).count("\n")

    text = _JINJA_TAGS.sub(blank, template)
    for pattern in ALLOWED_WITH_DIGITS:
        text = re.sub(pattern, "", text)
    # any numeric character counts: ASCII digits, other scripts' digits, superscripts, fractions, numerals
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1) if any(ch.isnumeric() for ch in line)]
