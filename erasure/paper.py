"""Build the paper (paper/paper.md + a self-contained paper/paper.html) from the template and the metrics.

Every number in the paper comes from a template variable: the reproduced values from metrics/*.json, the paper's
values from paper/claims.yaml, provenance from dvc.yaml / params.yaml / git. `hand_typed_numbers` enforces it on
the template source: outside `{{ }}`, `{% %}` and `{# #}` no numeric character may appear except in
`ALLOWED_WITH_DIGITS` (model names, "Fig N", "top-2", hash names), and inside a tag no numeric literal may appear
except formatting arguments and indexes (`num(3)`, `[0]`). The build refuses a template that breaks the rule.
"""
from __future__ import annotations

import base64
import html
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import markdown

from erasure.claims import (
    METRIC_FILES, Metrics, _MISSING, display, lookup, read_yaml, resolve_templated, stage_outputs,
)
from erasure.config import DataError
from erasure.stats import QUANTILES

TEMPLATE = Path("paper/template.md")
STYLE = Path("paper/style.css")
OUT_MD = Path("paper/paper.md")
OUT_HTML = Path("paper/paper.html")
VERIFICATION = Path("paper/verification.json")

FIGURES = {  # key -> file; the stage that makes each one is looked up in dvc.yaml
    "fig1": "figures/fig1_resid.png",
    "fig2": "figures/fig2_components.png",
    "fig3": "figures/fig3_heads.png",
    "fig4": "figures/fig4_dla.png",
    "fig5": "figures/fig5_adversarial.png",
    "atlas": "figures/erasure_atlas.png",
    "persistence": "figures/persistence.png",
}

# The only places a digit may appear in the template outside Jinja tags.
ALLOWED_WITH_DIGITS = [
    r"gelu-4l", r"GELU-4L", r"planted-4l", r"smollm2-135m", r"SmolLM2-135M",
    r"\bFigs?\.? \d+(?:[-–]\d+)?\b",  # figure references: Fig 1, Figs 1-3
    r"\btop-2\b",  # the method's name: the top-2 logit difference
    r"\bsha256\b", r"\bmd5\b",  # hash names
]
_JINJA_TAGS = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)


_TAG_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TAG_FORMAT_ARG = re.compile(r"\(\s*\d+\s*\)|\[\s*-?\d+\s*\]")  # num(3), pct(1), [0], [-1]


def _literal_in_tag(tag: str) -> bool:
    """A tag holds a hand-typed number: a digit left after removing names (fig1_resid, r_ci95) and formatting
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


# --------------------------------------------------------------------------------------------------------
# values in the template: attribute access into metrics that never fails silently


class Node:
    """A value in the template context; a missing key renders as a visible `missing: path` marker."""

    __slots__ = ("_v", "_path")

    def __init__(self, value: Any, path: str):
        object.__setattr__(self, "_v", value)
        object.__setattr__(self, "_path", path)

    def __getattr__(self, name: str) -> "Node":
        if name.startswith("__"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, key: Any) -> "Node":
        key = unwrap(key)
        if key is _MISSING or key is None:
            return Node(_MISSING, f"{self._path}.?")
        path = f"{self._path}.{key}"
        v = self._v
        if isinstance(v, dict) and key in v:
            return Node(v[key], path)
        if isinstance(v, list) and isinstance(key, int) and -len(v) <= key < len(v):
            return Node(v[key], path)
        return Node(_MISSING, path)

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
        return self._v is not _MISSING and bool(self._v)

    def __eq__(self, other: Any) -> bool:
        return unwrap(self) == unwrap(other)

    def __hash__(self) -> int:
        return hash(self._path)

    def __str__(self) -> str:
        if self._v is _MISSING or self._v is None:
            return f"**[missing: {self._path}]**"
        if isinstance(self._v, float):
            return display(self._v)
        if isinstance(self._v, (list, dict)):
            return display(self._v)
        return str(self._v)

    @property
    def missing(self) -> bool:
        return self._v is _MISSING or self._v is None


def unwrap(x: Any) -> Any:
    return x._v if isinstance(x, Node) else x


def _missing_text(x: Any) -> str | None:
    if isinstance(x, Node) and x.missing:
        return str(x)
    if x is None or x is _MISSING:
        return "**[missing]**"
    return None


def f_num(x: Any, digits: int = 3) -> str:
    """A number with a fixed count of decimals."""
    miss = _missing_text(x)
    if miss:
        return miss
    v = unwrap(x)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    return f"{v:.{digits}f}"


def f_pct(x: Any, digits: int = 0) -> str:
    """A fraction as a percentage: 0.85 -> 85%."""
    miss = _missing_text(x)
    if miss:
        return miss
    return f"{100 * float(unwrap(x)):.{digits}f}%"


def f_tok(x: Any) -> str:
    """A token as an inline code span with its quotes, so leading spaces show: `" bottom"`."""
    miss = _missing_text(x)
    if miss:
        return miss
    return "`" + json.dumps(str(unwrap(x)), ensure_ascii=False) + "`"


def f_toks(xs: Any) -> str:
    miss = _missing_text(xs)
    if miss:
        return miss
    return ", ".join(f_tok(x) for x in unwrap(xs))


def f_names(xs: Any) -> str:
    """A list of component names: L2H2, L2H3, ..."""
    miss = _missing_text(xs)
    if miss:
        return miss
    v = unwrap(xs)
    return ", ".join(str(unwrap(x)) for x in v) if isinstance(v, list) else str(v)


def f_change(new: Any, ref: Any, digits: int = 0) -> str:
    """Relative change from `ref` to `new` as a signed percentage: (new - ref) / |ref|."""
    miss = _missing_text(new) or _missing_text(ref)
    if miss:
        return miss
    a, b = float(unwrap(new)), float(unwrap(ref))
    if b == 0:
        return "undefined (reference is 0)"
    return f"{100 * (a - b) / abs(b):+.{digits}f}%"


def f_neg(x: Any) -> Any:
    """-x (missing stays missing)."""
    v = unwrap(x)
    return Node(-v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else x


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


def f_md(text: Any) -> str:
    """Text from a data file made safe inside a Markdown table cell or inline: pipes and newlines escaped."""
    return str(unwrap(text)).replace("|", "\\|").replace("\n", "\\n").replace("\t", "\\t")


# --------------------------------------------------------------------------------------------------------
# provenance


def git_commit(root: Path) -> str:
    """`git rev-parse --short HEAD`, plus "+dirty" if the work tree has changes."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=20)
        if head.returncode != 0:
            return "unknown (not a git checkout)"
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True,
                                timeout=60)
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"
    return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def stage_params(dvc_yaml: dict, stage: str, params: dict) -> list[tuple[str, Any]]:
    """(dotted name, value) of every param leaf a dvc.yaml stage declares, `${...}` resolved from params."""
    spec = ((dvc_yaml.get("stages") or {}).get(stage) or {}).get("params") or []
    names: list[str] = []
    for item in spec:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, dict):  # {params_file: [keys]}: only params.yaml is used here
            for keys in item.values():
                names += list(keys or [])
    out: list[tuple[str, Any]] = []
    for name in names:
        name = resolve_templated(name, params)
        value = lookup(params, name)
        out += _leaves(name, value)
    return out


def _leaves(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in _leaves(f"{prefix}.{k}", v)]
    if isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(f"{prefix}.{i}", v)]
    return [(prefix, "(not in params.yaml)" if value is _MISSING else value)]


def _param_text(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False) if (not value or re.search(r"[\s`|,]", value)) else value
    if isinstance(value, list):
        return "[" + ", ".join(_param_text(v) for v in value) + "]"
    return json.dumps(value)


@dataclass
class Figure:
    key: str
    path: str
    exists: bool
    stage: str | None
    params: list[tuple[str, Any]]
    commit: str

    @property
    def image(self) -> str:
        """The Markdown image (path relative to paper/), or a visible note when the file is absent."""
        if not self.exists:
            return (f"> **Figure not produced:** `{self.path}` is absent "
                    f"(stage `{self.stage or '?'}` has not run for this model).")
        return f"![{self.path}](../{self.path})"

    @property
    def provenance(self) -> str:
        """Stage, the params that shaped it (from its dvc.yaml `params:`) and the git commit."""
        params = "; ".join(f"`{name}={_param_text(v)}`" for name, v in self.params) or "none"
        return f"<small>Stage `{self.stage or '?'}` · params: {params} · commit `{self.commit}`.</small>"


def prompt_info(root: Path, params: dict, fig1: dict | None = None) -> dict:
    """The prompt set that produced the metrics: data/prompts/tokens.json (+ tokens.npy's shape), else the
    header of metrics/fig1_resid.json, else params.yaml."""
    info: dict[str, Any] = {}
    model = params.get("model")
    cfg = ((params.get("models") or {}).get(model) or {}).get("prompts") or {}
    info.update({k: cfg.get(k) for k in ("source", "n_text", "n_code", "seq_len", "seed")})
    info["from"] = "params.yaml"
    if fig1 and fig1.get("n_prompts") is not None:
        info.update({"n_prompts": fig1.get("n_prompts"), "seq_len": fig1.get("seq_len", info["seq_len"])})
        info["from"] = "metrics/fig1_resid.json and params.yaml"
    meta_path = root / "data/prompts/tokens.json"
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            meta = {}
        info.update({k: meta[k] for k in ("source", "n_text", "n_code", "sha256", "model") if k in meta})
        info["from"] = "data/prompts/tokens.json"
    tokens = root / "data/prompts/tokens.npy"
    if tokens.exists():
        try:
            import numpy as np  # noqa: PLC0415
            shape = np.load(tokens, mmap_mode="r").shape
            info["n_prompts"], info["seq_len"] = int(shape[0]), int(shape[1])
        except (ValueError, OSError):
            pass
    if info.get("n_prompts") is None and isinstance(info.get("n_text"), int) and isinstance(info.get("n_code"), int):
        info["n_prompts"] = info["n_text"] + info["n_code"]
    info["sha256_short"] = (info.get("sha256") or "")[:12] or None
    return info


# --------------------------------------------------------------------------------------------------------
# context, rendering


def _ordinal(q: float) -> str:
    text = f"{q:g}"
    return text + ("th" if not text.endswith(("1", "2", "3")) or text.endswith(("11", "12", "13"))
                   else {"1": "st", "2": "nd", "3": "rd"}[text[-1]])


def _ci_label(fig4: dict | None) -> str:
    """The confidence level of fig4's `*_ci<NN>` intervals, from the key name (e.g. r_ci95 -> 95%)."""
    for key in ((fig4 or {}).get("paper") or {}):
        match = re.fullmatch(r"r_ci(\d+)", key)
        if match:
            return f"{match.group(1)}%"
    return "confidence"


def build_context(root: str | Path, params: dict, registry: dict, verification: dict | None) -> dict:
    root = Path(root)
    dvc_yaml = read_yaml(root / "dvc.yaml") or {}
    owners = stage_outputs(dvc_yaml)
    metrics = Metrics(root)
    m = {Path(f).stem: metrics.file(f) for f in METRIC_FILES}
    run_model = params.get("model")
    paper = registry.get("paper", {})
    commit = git_commit(root)
    figures = {}
    for key, path in FIGURES.items():
        stage = owners.get(path)
        figures[key] = Figure(key=key, path=path, exists=(root / path).is_file(), stage=stage,
                              params=stage_params(dvc_yaml, stage, params) if stage else [], commit=commit)
    results = {r["id"]: r for r in (verification or {}).get("claims", [])}
    claims = {}
    for entry in registry["claims"]:
        r = results.get(entry["id"], {})
        claims[entry["id"]] = {**entry, "status": r.get("status", "NOT RUN"), "reproduced": r.get("reproduced"),
                               "diff": r.get("diff"), "reason": r.get("reason", "verification has not run")}
    fig1 = m.get("fig1_resid") or {}
    fig2 = m.get("fig2_components") or {}
    writer = fig1.get("writer") or ((params.get("models") or {}).get(run_model) or {}).get("writer")
    erasers = fig2.get("erasers") or ((params.get("models") or {}).get(run_model) or {}).get("erasers")
    is_paper_model = run_model == paper.get("model")
    banner = None
    if not is_paper_model:
        banner = (f"These results are from **{run_model}**, not {paper.get('model')}: the numbers below are "
                  f"reproduced on a different model and are **not** the paper's claims. The paper's values are "
                  f"shown for reference only; the verification table marks every paper claim NOT RUN.")
    fig5_params = (params.get("fig5") or {}).get("prompts")
    checkpoints = list((fig1.get("checkpoints") or {}).keys()) or _MISSING
    return {
        "model": run_model,
        "is_paper_model": is_paper_model,
        "banner": banner,
        "paper": Node(paper, "claims.yaml:paper"),
        "claims": Node(claims, "claims"),
        "m": Node(m, "metrics"),
        "params": Node(params, "params"),
        "fig5_prompts": Node(fig5_params, "params.fig5.prompts"),
        "checkpoints": Node(checkpoints, "metrics.fig1_resid.checkpoints"),
        "q": {k: _ordinal(v) for k, v in QUANTILES.items()},  # q.q25 = "25th": percentile names from stats.py
        "ci": _ci_label(m.get("fig4_dla")),
        "writer": Node(writer, "writer"),
        "erasers": Node(erasers, "erasers"),
        "figs": figures,
        "commit": commit,
        "prompts": Node(prompt_info(root, params, fig1), "prompts"),
        "verification": Node(verification or {}, "verification"),
        "verification_table": verification_table(verification, registry),
        "metric_models": Node((verification or {}).get("metric_models") or
                              {f: metrics.model_of(f) for f in METRIC_FILES if metrics.file(f) is not None},
                              "metric_models"),
    }


def verification_table(verification: dict | None, registry: dict) -> str:
    """A compact Markdown table of the verification report (full report: paper/verification.md)."""
    if not verification:
        return "> **Verification has not run:** `paper/verification.json` is absent."
    rows = ["| claim | source | paper | reproduced | tolerance | status |", "|---|---|---|---|---|---|"]
    sections = {e["id"]: f"{e['source']} {e['section']}" for e in registry["claims"]}
    for r in verification.get("claims", []):
        status = r["status"] if r["status"] != "NOT RUN" else f"NOT RUN ({r['reason']})"
        if r["status"] == "FAIL" and r["reason"]:
            status += f": {r['reason']}"
        rows.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in (
            f"**{r['id']}**: {r['text']}", sections.get(r["id"], ""), display(r["paper_value"]),
            display(r["reproduced"]), r["tolerance"] or "—", status)) + " |")
    if verification.get("planted"):
        rows += ["", "| planted-truth check | expected | reproduced | tolerance | status |", "|---|---|---|---|---|"]
        for r in verification["planted"]:
            status = r["status"] + (f": {r['reason']}" if r["status"] != "PASS" and r["reason"] else "")
            rows.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in (
                f"**{r['id']}**: {r['text']}", display(r["paper_value"]), display(r["reproduced"]),
                r["tolerance"] or "—", status)) + " |")
    return "\n".join(rows)


def make_env() -> jinja2.Environment:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=f_num, pct=f_pct, tok=f_tok, toks=f_toks, names=f_names, words=f_words, md=f_md,
                       change=f_change, neg=f_neg, status=f_status)
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
        data = base64.b64encode(path.read_bytes()).decode("ascii")
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
    template = template if template is not None else (root / TEMPLATE).read_text()
    css = css if css is not None else ((root / STYLE).read_text() if (root / STYLE).exists() else "")
    ver_path = root / VERIFICATION
    verification = json.loads(ver_path.read_text()) if ver_path.exists() else None
    context = build_context(root, params, registry, verification)
    md_text = render_markdown(template, context)
    title = f"{registry.get('paper', {}).get('title', 'paper')}: a reproduction on {params.get('model')}"
    return md_text, to_html(md_text, root, css, title)

