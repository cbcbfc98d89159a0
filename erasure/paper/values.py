"""Values in the paper template: attribute access into the metrics that never fails silently, and the filters
that format them (`num`, `pct`, `tok`, ...). A missing value renders as a visible `missing: path` marker."""
from __future__ import annotations

from typing import Any

from erasure.formatting import as_number, fixed, interval, percent
from erasure.markup import md_code, md_text
from erasure.mechanism.names import display_token, interval_keys
from erasure.verification.metrics import MISSING
from erasure.verification.report import display


class Node:
    """A value in the template context; a missing key renders as a visible `missing: path` marker."""

    __slots__ = ("_v", "_path")

    def __init__(self, value: Any, path: str):
        object.__setattr__(self, "_v", value)
        object.__setattr__(self, "_path", path)

    def __getattr__(self, name: str) -> Node:
        if name.startswith("__"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, key: Any) -> Node:
        key = unwrap(key)
        if key is MISSING or key is None:
            return Node(MISSING, f"{self._path}.?")
        path = f"{self._path}.{key}"
        v = self._v
        if isinstance(v, dict) and key in v:
            return Node(v[key], path)
        if isinstance(v, list) and isinstance(key, int) and -len(v) <= key < len(v):
            return Node(v[key], path)
        return Node(MISSING, path)

    def __iter__(self):
        v = self._v
        if isinstance(v, dict):
            return iter(v)
        if isinstance(v, list):
            return (Node(x, f"{self._path}.{i}") for i, x in enumerate(v))
        return iter(())

    def __len__(self) -> int:
        return len(self._v) if isinstance(self._v, (dict, list, str)) else 0

    def __bool__(self) -> bool:
        return self._v is not MISSING and bool(self._v)

    def __eq__(self, other: Any) -> bool:
        return unwrap(self) == unwrap(other)

    def __hash__(self) -> int:
        return hash(self._path)

    def __str__(self) -> str:
        if self._v is MISSING or self._v is None:
            return f"**[missing: {self._path}]**"
        if isinstance(self._v, float):
            return display(self._v)
        if isinstance(self._v, (list, dict)):
            return display(self._v)
        return str(self._v)

    @property
    def missing(self) -> bool:
        return self._v is MISSING or self._v is None


def unwrap(x: Any) -> Any:
    return x._v if isinstance(x, Node) else x


def _missing_text(x: Any) -> str | None:
    if isinstance(x, Node) and x.missing:
        return str(x)
    if x is None or x is MISSING:
        return "**[missing]**"
    return None


def _number(x: Any) -> float | None:
    return as_number(unwrap(x))


def _not_a(kind: str, x: Any) -> str:
    """The visible marker of a value of the wrong type (a hand-edited or corrupt metric), like `missing:`."""
    return f"**[not {kind}: {x._path if isinstance(x, Node) else repr(x)}]**"


def f_num(x: Any, digits: int = 3) -> str:
    """A number with a fixed count of decimals."""
    miss = _missing_text(x)
    if miss:
        return miss
    v = _number(x)
    return _not_a("a number", x) if v is None else fixed(v, digits)


def f_pct(x: Any, digits: int = 0) -> str:
    """A fraction as a percentage: 0.85 -> 85%."""
    miss = _missing_text(x)
    if miss:
        return miss
    v = _number(x)
    return _not_a("a number", x) if v is None else percent(v, digits)


def f_ci(record: Any, key: str, digits: int = 2) -> str:
    """The interval stored beside `key` in a record (`<key>_low`, `<key>_high`) as "lo to hi"; "n/a" where it is
    null (e.g. no erasers, so no V-composition share); a record without the keys shows their `missing:` marker."""
    node = record if isinstance(record, Node) else Node(record, "?")
    ends = [node[name] for name in interval_keys(unwrap(key))]
    if any(unwrap(e) is MISSING for e in ends):
        return " to ".join(str(e) for e in ends)
    lo, hi = (_number(e) for e in ends)
    return "n/a" if lo is None or hi is None else interval(lo, hi, digits)


def f_na(x: Any, digits: int = 2) -> str:
    """A number that may legitimately have no value (None): "n/a" then, not a missing-value alarm."""
    v = unwrap(x)
    if v is None:
        return "n/a"
    return f_num(x, digits)


def f_tok(x: Any, token_id: Any = None) -> str:
    """A token in a code font with its whitespace visible, `␣bottom` (a token without text: its id); its
    characters inert for Markdown and HTML (erasure.markup: a vocabulary entry `</td><script>` shows as text)."""
    miss = _missing_text(x)
    if miss:
        return miss
    return md_code(display_token(str(unwrap(x)), unwrap(token_id)))


def f_toks(xs: Any) -> str:
    miss = _missing_text(xs)
    if miss:
        return miss
    v = unwrap(xs)
    return ", ".join(f_tok(x) for x in v) if isinstance(v, list) else _not_a("a list", xs)


def f_names(xs: Any) -> str:
    """A list of component names: L2H2, L2H3, ...; "none" for an empty list (a run without erasers)."""
    miss = _missing_text(xs)
    if miss:
        return miss
    v = unwrap(xs)
    if isinstance(v, list):
        return ", ".join(md_text(unwrap(x)) for x in v) if v else "none"
    return _not_a("a list", xs)


def f_change(new: Any, ref: Any, digits: int = 0) -> str:
    """Relative change from `ref` to `new` as a signed percentage: (new - ref) / |ref|."""
    miss = _missing_text(new) or _missing_text(ref)
    if miss:
        return miss
    a, b = _number(new), _number(ref)
    if a is None or b is None:
        return _not_a("a number", new if a is None else ref)
    if b == 0:
        return "undefined (reference is 0)"
    return f"{100 * (a - b) / abs(b):+.{digits}f}%"


def f_neg(x: Any) -> Any:
    """-x (missing stays missing)."""
    v = unwrap(x)
    return x if _number(v) is None else Node(-v, "")


def f_status(claim: Any) -> str:
    """A claim's verification status as a short tag: [PASS], [FAIL], [NOT RUN]."""
    status = unwrap(claim["status"]) if isinstance(claim, Node) else claim.get("status")
    return f"[{status}]" if isinstance(status, str) else "[NOT RUN]"


def f_words(n: Any) -> str:
    """Small integers as words where prose reads better: 6 -> six (the value still comes from a variable)."""
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
             "twelve"]
    v = unwrap(n)
    return words[v] if isinstance(v, int) and 0 <= v < len(words) else f_num(n, 0)


def f_code(text: Any) -> str:
    """Text from a data file (a prompt) in a code font, inert (erasure.markup.md_code); never inside backticks."""
    miss = _missing_text(text)
    return miss if miss else md_code(unwrap(text))


def f_md(text: Any) -> str:
    """Text from a data file (a prompt) made inert inside a Markdown table cell or inline: markup characters as
    character references, line breaks visible (erasure.markup.md_text)."""
    miss = _missing_text(text)
    return miss if miss else md_text(unwrap(text))
