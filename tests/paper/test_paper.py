"""The paper build: synthetic metrics + tiny PNGs in a tmp dir -> paper.md / paper.html, checked with html.parser.

The no-hand-typed-number rule is checked on the template source: outside `{{ }}`, `{% %}`, `{# #}` no digit may
appear except in erasure.paper.template_rules.ALLOWED_WITH_DIGITS (model names, "Fig N", "top-2", hash names).
"""
from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

import synthetic_metrics as tc
from erasure.errors import DataError
from erasure.mechanism.names import display_token
from erasure.paper.build import build
from erasure.paper.template_rules import hand_typed_numbers
from erasure.params.sections import Compare
from erasure.paths import FIGURES
from erasure.verification.verify import run_verification
from html_page import parse

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = (ROOT / "paper/template.md").read_text()
CSS = (ROOT / "paper/style.css").read_text()
ALL_FIGURES = tuple(FIGURES.values())
COMPARE = Compare.model_validate(yaml.safe_load((ROOT / "params.yaml").read_text())["compare"])


def tiny_png(rgb: tuple[int, int, int] = (76, 114, 176)) -> bytes:
    """A valid 2x2 RGB PNG, written with the standard library only."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes(rgb) * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def params_for(model: str, writer: str = "L0H2") -> dict:
    return {
        "model": model,
        "models": {model: {"loader": "x", "writer": writer, "erasers": tc.ERASERS,
                           "prompts": {"source": "offline", "n_text": 3, "n_code": 1, "seq_len": 64, "seed": 7}}},
        "stats": {"headline": "all"},
        "fig1": {"bands": ["25-75", "12.5-87.5"], "dpi": 120},
        "fig2": {"bands": ["25-75", "12.5-87.5"], "negative_median": 0.02},
        "fig3": {"bands": ["25-75", "12.5-87.5"]},
        "fig4": {"n_prompts": 30, "positions": "all"},
        "fig5": {"prompts": {
            "p1": {"text": "It's in the cupboard, either on the top or on the", "pair": [" bottom", " top"]},
            "p2": {"text": "I went to university at Michigan", "pair": [" State", " University"]},
            "p3": {"text": "class MyClass:\n\tdef", "pair": [" __", " get"]},
            "p4": {"text": "The church I go to is the Seventh-day Adventist", "pair": [" Church", " church"]}}},
        "discovery": {"top_writers": 5},
        "paper": {"regression": {"abs": 1.0e-4, "rel": 1.0e-4}},
    }


def make_tree(root: Path, model: str, files: dict | None = None, figures=ALL_FIGURES,
              with_comparison: bool = True) -> dict:
    files = files if files is not None else (tc.gelu_metrics(0.2) if model == "gelu-4l" else tc.synthetic_metrics(model))
    tc.write_tree(root, files, model)
    if with_comparison:
        (root / "metrics/comparison.json").write_text(json.dumps(tc.comparison_metrics()))
    for i, path in enumerate(figures):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(tiny_png((10 * i, 100, 200)))
    params = params_for(model)
    report = run_verification(root, params, tc.REGISTRY, None, compare=COMPARE)
    (root / "paper").mkdir(exist_ok=True)
    (root / "paper/verification.json").write_text(json.dumps(report))
    return params


def build_in(root: Path, params: dict, template: str = TEMPLATE) -> tuple[str, str]:
    return build(root, params, tc.REGISTRY, template=template, css=CSS)


# --------------------------------------------------------------------------------------------------------


def test_template_has_no_hand_typed_numbers():
    assert hand_typed_numbers(TEMPLATE) == []


@pytest.mark.parametrize("injected", [
    "The erasers remove 91% of it.",
    "{% if model %}about 0.9 of it{% endif %}",
    "| L2H5 | -0.26 |",
    "Figure 3 shows", "the 25th percentile", "the norm ‖o‖²", "about ½ of it", "step Ⅳ",
    "{{ 0.91 }}", "{{ '0.91' }}", "{{ x + 1 }}", "{% if x > 2 %}big{% endif %}",
])
def test_an_injected_digit_is_caught(injected, tmp_path):
    template = TEMPLATE.replace("## Summary", f"## Summary\n\n{injected}\n", 1)
    assert hand_typed_numbers(template), injected
    params = make_tree(tmp_path, "gelu-4l")
    with pytest.raises(DataError, match="hand-typed numbers"):
        build_in(tmp_path, params, template)


def test_digits_inside_tags_and_allowed_names_are_fine():
    ok = ("{{ m.fig1_resid.q87_5_low | num(3) }} {{ w | ci('erasure') }} {{ ck[-1] }} on gelu-4l and SmolLM2-135M, "
          "Fig 1, Figs 1-3, the top-2 difference {# 0.91 #} {% if claims.adv_p1 %}{% endif %}")
    assert hand_typed_numbers(ok) == []


def test_gelu_paper_embeds_every_figure_and_fills_every_variable(tmp_path):
    params = make_tree(tmp_path, "gelu-4l")
    md_text, html_text = build_in(tmp_path, params)
    for text in (md_text, html_text):
        assert "{{" not in text and "{%" not in text and "}}" not in text
    assert "[missing:" not in md_text
    page = parse(html_text)
    assert len(page.images) == len(FIGURES)
    embedded = set()
    for img in page.images:
        src = img["src"]
        assert src.startswith("data:image/png;base64,"), src[:60]
        embedded.add(base64.b64decode(src.split(",", 1)[1]))
    assert embedded == {(tmp_path / p).read_bytes() for p in FIGURES.values()}
    assert "Not the paper's model" not in html_text
    # provenance in captions, one line each: stage, its params and their hash, commit
    assert "Stage <code>fig1_resid</code> · params <code>stats</code>, <code>fig1</code> (hash <code>" in html_text
    assert "<code>models.gelu-4l</code>" in html_text  # `models.${model}` resolved from params
    assert "fig1.bands" not in html_text  # values are hashed, not listed
    assert "not a git checkout" in html_text
    # readable: inline CSS with a max width, tables
    assert "max-width" in page.style and "<table>" in html_text


def _hashes(html_text: str) -> dict[str, str]:
    return dict(re.findall(r"Stage <code>(\w+)</code> · params .*? \(hash <code>([0-9a-f]{8})</code>\)", html_text))


def test_a_figures_param_hash_changes_with_its_own_params_only(tmp_path):
    params = make_tree(tmp_path, "gelu-4l")
    before = _hashes(build_in(tmp_path, params)[1])
    params["fig1"]["dpi"] = 80
    after = _hashes(build_in(tmp_path, params)[1])
    assert set(before) == {"fig1_resid", "fig2_components", "fig3_heads", "fig4_dla", "fig5_adversarial", "discover"}
    assert {k for k in before if before[k] != after[k]} == {"fig1_resid"}


def test_the_commit_is_the_last_change_to_the_code_not_to_an_output(tmp_path):
    """Committing regenerated outputs keeps the commit the paper names (a clone rebuilds the same bytes); an
    uncommitted change to the code marks it dirty."""
    import subprocess

    from erasure.paper.context import git_commit

    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@localhost"]
    (tmp_path / "stage.py").write_text("a = 1\n")
    (tmp_path / "out.json").write_text("{}\n")
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "code"], check=True)
    code = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout[:12]
    assert git_commit(tmp_path, ["stage.py"]) == code
    (tmp_path / "out.json").write_text('{"x": 1}\n')
    subprocess.run([*git, "commit", "-qam", "outputs"], check=True)
    assert git_commit(tmp_path, ["stage.py"]) == code
    (tmp_path / "stage.py").write_text("a = 2\n")
    assert git_commit(tmp_path, ["stage.py"]) == code + "+dirty"


def test_pipeline_code_leaves_out_params_and_every_stage_output():
    from erasure.paper.context import pipeline_code

    dvc_yaml = {"stages": {"a": {"deps": ["erasure/x.py", "data/prompts"], "outs": ["data/prompts/sub"]},
                           "b": {"deps": ["metrics", "paper/t.md"], "metrics": [{"metrics/headline": {}}]}}}
    assert pipeline_code(dvc_yaml) == ["dvc.yaml", "erasure/x.py", "paper/t.md"]


def test_numbers_in_the_paper_come_from_the_metrics(tmp_path):
    files = tc.gelu_metrics(0.0)
    tc.set_key(files, "metrics/fig1_resid.json:checkpoints.resid_mid2.clean.all.median", 0.1234)
    tc.set_key(files, "metrics/fig4_dla.json:paper.r", -0.6789)
    params = make_tree(tmp_path, "gelu-4l", files)
    md_text, _ = build_in(tmp_path, params)
    assert "**0.123**" in md_text and "**-0.679**" in md_text
    flat = " ".join(md_text.split())
    assert "(paper: 0.12;" in flat and "paper: -0.702)" in flat  # paper values come from claims.yaml


def test_verification_table_is_in_the_paper(tmp_path):
    params = make_tree(tmp_path, "gelu-4l")
    _, html_text = build_in(tmp_path, params)
    page = parse(html_text)
    cells = [row[0] for row in page.rows if row]
    for claim in tc.REGISTRY["claims"]:
        assert any(cell.startswith(claim["id"]) for cell in cells), claim["id"]
    verdicts = {row[-1] for row in page.rows if row and row[0].split(":")[0] in {c["id"] for c in tc.REGISTRY["claims"]}}
    # gelu_metrics(0.2): equal at the printed precision, but the paper's and the blog's median share one key
    assert verdicts == {"PASS: equal at printed precision", "PASS: inside our interval", "PASS: rule holds"}


def test_adversarial_prompt_table_keeps_its_shape(tmp_path):
    params = make_tree(tmp_path, "gelu-4l")
    _, html_text = build_in(tmp_path, params)
    fig5_rows = [r for r in parse(html_text).rows if r and not r[0].startswith("adv_")
                 and any(p in r[0] for p in ("cupboard", "Michigan", "MyClass", "church"))]
    assert len(fig5_rows) == 4 and {len(r) for r in fig5_rows} == {6}, fig5_rows
    assert fig5_rows[2][0] == "class MyClass:\\n\\tdef"  # control characters shown escaped, row intact


@pytest.mark.parametrize("model", ["planted-4l", "smollm2-135m"])
def test_banner_for_a_model_that_is_not_the_papers(model, tmp_path):
    params = make_tree(tmp_path, model)
    md_text, html_text = build_in(tmp_path, params)
    assert "Not the paper's model" in md_text.split("## Summary")[0]
    assert f"These results are from <strong>{model}</strong>" in html_text
    assert "not</strong> the paper's claims" in html_text
    assert "NOT RUN" in html_text
    assert md_text.count("this claim is about gelu-4l") == 1  # why NOT RUN: said once, not in every row


def test_tokens_are_shown_readably(tmp_path):
    params = make_tree(tmp_path, "gelu-4l")
    md_text, _ = build_in(tmp_path, params)
    assert "<code>␣bottom</code>, <code>␣State</code>, <code>␣&#95;&#95;</code>, <code>␣Church</code>" in md_text
    assert '" bottom"' not in md_text.split("## Verification")[0]


def test_an_absent_figure_is_noted_not_fatal(tmp_path):
    figures = [p for p in FIGURES.values() if p.name != "fig4_dla.png"]
    params = make_tree(tmp_path, "gelu-4l", figures=figures)
    md_text, html_text = build_in(tmp_path, params)
    assert "Figure not produced:** `figures/fig4_dla.png` is absent" in md_text
    assert len(parse(html_text).images) == len(FIGURES) - 1


def test_absent_metrics_show_as_missing_not_as_numbers(tmp_path):
    files = tc.gelu_metrics(0.0)
    del files["metrics/fig4_dla.json"]
    params = make_tree(tmp_path, "gelu-4l", files)
    md_text, _ = build_in(tmp_path, params)
    assert "[missing: metrics.fig4_dla.paper.r]" in md_text


def test_a_metric_of_the_wrong_type_shows_as_such_not_as_a_crash(tmp_path):
    """A hand-edited metric (a list where a dict was, a string where a number was) renders a visible marker, as a
    missing one does; a metrics file that is not a JSON object is one DataError naming it."""
    files = tc.gelu_metrics(0.0)
    files["metrics/fig1_resid.json"]["checkpoints"] = [1, 2]
    files["metrics/fig1_resid.json"]["vcomp_share"]["all"] = "most"
    files["metrics/fig5_adversarial.json"]["prompts"]["p1"]["top2"] = 5
    params = make_tree(tmp_path, "gelu-4l", files)
    md_text, _ = build_in(tmp_path, params)
    assert "**[not a number: metrics.fig1_resid.vcomp_share.all]**" in md_text
    assert "**[not a list: metrics.fig5_adversarial.prompts.p1.top2]**" in md_text
    (tmp_path / "metrics/fig2_components.json").write_text("[1, 2]")
    with pytest.raises(DataError, match=r"metrics/fig2_components\.json holds a list, not a JSON object of metrics"):
        build_in(tmp_path, params)


def test_beyond_gelu4l_section_comes_from_the_comparison(tmp_path):
    params = make_tree(tmp_path, "planted-4l")
    md_text, _ = build_in(tmp_path, params)
    section = md_text.split("## Beyond gelu-4l")[1].split("## Verification")[0]
    comparison = tc.comparison_metrics()
    smol = next(m for m in comparison["models"] if m["model"] == "smollm2-135m")["writers"][0]
    assert "**smollm2-135m: no gelu-4l-like erasure is found.**" in section
    assert f"{smol['erasure']:.2f} ({smol['erasure_low']:.2f} to {smol['erasure_high']:.2f})" in section
    assert f"{100 * smol['top_frequency']:.0f}% of the prompt resamples" in section
    assert "recovers the planted truth" in section and "| **gemma3-270m** | | | not run |" in section
    assert "rotary positions whose verdict is short of yes (smollm2-135m)" in section
    assert "| **smollm2-135m** |" in section and "| **no** |" in section
    assert "[missing" not in section


def test_without_a_comparison_the_section_says_so(tmp_path):
    params = make_tree(tmp_path, "planted-4l", with_comparison=False)
    md_text, _ = build_in(tmp_path, params)
    assert "The cross-model comparison has not run" in md_text


class TagLog(HTMLParser):
    """Every element and attribute of a page: what markup it holds, whatever its text."""

    def __init__(self):
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs += attrs


HOSTILE = ["</td><script>alert(1)</script>", "`|**x**`", "[a](javascript:alert(1))", "<img src=x onerror=y>", "a|b"]


def test_text_from_data_is_shown_as_text_never_as_markup(tmp_path):
    """Vocabulary entries and a prompt text holding HTML and Markdown (a tokenizer can hold any string): each shows
    as its characters in paper.html, no element is injected and the tables keep their columns."""
    files = tc.gelu_metrics(0.2)
    files["metrics/aligned_tokens.json"]["top"][:len(HOSTILE)] = [
        {"token": t, "score": 1.0 - i / 40} for i, t in enumerate(HOSTILE)]
    files["metrics/fig5_adversarial.json"]["prompts"]["p1"]["top2"] = HOSTILE[:2]
    params = make_tree(tmp_path, "gelu-4l", files)
    params["fig5"]["prompts"]["p1"]["text"] = "</td></tr></table><script>x</script>"
    _, html_text = build_in(tmp_path, params)
    elements = TagLog()
    elements.feed(html_text)
    assert "script" not in elements.tags and not [a for a in elements.attrs if a[0].startswith("on")]
    assert not [a for a in elements.attrs if a[0] == "href" and "javascript" in (a[1] or "")]
    page = parse(html_text)
    visible = "".join(page.text)
    for token in HOSTILE:
        assert display_token(token) in visible, token  # its characters, spaces shown as ␣
    fig5_rows = [r for r in page.rows if r and r[0].startswith("</td></tr></table>")]
    assert len(fig5_rows) == 1 and len(fig5_rows[0]) == 6, fig5_rows
    assert fig5_rows[0][1] == "</td><script>alert(1)</script>, `|**x**`", fig5_rows[0]


@pytest.mark.parametrize("content, expected", [
    (b"", "figures/fig1_resid.png is not a PNG (0 bytes)"),
    (b"GIF89a not a png", "figures/fig1_resid.png is not a PNG (16 bytes starting b'GIF89a n')"),
])
def test_a_figure_that_is_not_a_png_is_refused_in_one_line(tmp_path, content, expected):
    params = make_tree(tmp_path, "gelu-4l")
    (tmp_path / "figures/fig1_resid.png").write_bytes(content)
    with pytest.raises(DataError, match=re.escape(expected)):
        build_in(tmp_path, params)


@pytest.mark.parametrize("injected, expected", [
    ("{% if x %}never closed", "paper/template.md is not a valid template at line"),
    ("{{ 'a' | nosuchfilter }}", "paper/template.md is not a valid template at line"),
    ("{{ x(", "paper/template.md is not a valid template at line"),
])
def test_a_template_error_is_one_line(tmp_path, injected, expected):
    params = make_tree(tmp_path, "gelu-4l")
    with pytest.raises(DataError, match=re.escape(expected)):
        build_in(tmp_path, params, TEMPLATE.replace("## Summary", f"## Summary\n\n{injected}\n", 1))
