"""`dvc plots diff` draws every chart with no network: the page DVC fills (.dvc/config plots.html_template, built
by `npm ci` from the locked Vega packages) carries Vega, Vega-Lite and vega-embed inline.

Rendered in headless Chromium with every host name unresolvable and a proxy to a closed port; each chart must hold
drawn marks (SVG elements with role graphics-symbol, as Vega writes them). The control: DVC's own page (scripts
from a CDN) rendered the same way draws nothing, so the network really is off and a blank chart is detected.
The plotted data is the committed run's (`git show HEAD:`), whatever run the workspace holds.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / ".dvc" / "plots" / "page.html"
CHROMIUM = shutil.which("chromium")
OFFLINE_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync",
                 "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
                 "--virtual-time-budget=60000"]  # virtual time: the DOM is dumped once vega-embed's work is done
PACKAGES = ("vega", "vega-lite", "vega-embed")


def _require(ok: bool, reason: str) -> None:
    """Skip without the tool on a developer's machine; fail in CI, whose .ci/run installs it."""
    if not ok:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(reason)


def _committed(rel: str) -> bytes:
    return subprocess.run(["git", "show", f"HEAD:{rel}"], cwd=ROOT, capture_output=True, check=True).stdout


def _vega_plots() -> list:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]


class Charts(HTMLParser):
    """Per DVC plot div (the ids DVC gave them): how many drawn marks it holds, and its text."""

    def __init__(self, ids: list[str]):
        super().__init__()
        self.marks = dict.fromkeys(ids, 0)
        self.text = dict.fromkeys(ids, "")
        self._open: list[tuple[str, str | None]] = []  # (tag, the chart it is in)

    def _chart(self) -> str | None:
        return self._open[-1][1] if self._open else None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        chart = attrs.get("id") if tag == "div" and attrs.get("id") in self.marks else self._chart()
        self._open.append((tag, chart))
        if chart and attrs.get("role") == "graphics-symbol":
            self.marks[chart] += 1

    def handle_endtag(self, tag):
        while self._open and self._open.pop()[0] != tag:  # void elements (img, meta) have no end tag
            pass

    def handle_data(self, data):
        if self._chart():
            self.text[self._chart()] += data


def render(index: Path, tmp: Path) -> str:
    """The DOM after rendering, offline. Chromium's helper processes are ended with it (its own process group)."""
    proc = subprocess.Popen([CHROMIUM, *OFFLINE_FLAGS, f"--user-data-dir={tmp / 'chromium'}", "--dump-dom",
                             index.as_uri()], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        dom, _ = proc.communicate(timeout=180)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, dom[-2000:]
    return dom


def charts(index: Path, tmp: Path) -> Charts:
    ids = re.findall(r'<div id = "([^"]+)">\s*<script', index.read_text())
    parsed = Charts(ids)
    parsed.feed(render(index, tmp))
    return parsed


@pytest.fixture(scope="module")
def plots_repo(tmp_path_factory) -> Path:
    """A git repo with this checkout's dvc.yaml and .dvc/ (config, templates, the built page), the committed
    params.yaml (dvc.yaml interpolates it) and the committed run's plots and figures, committed, so that `dvc plots diff HEAD` overlays two revisions."""
    _require(PAGE.is_file(), "no .dvc/plots/page.html: run `npm ci` (README set-up) to build it")
    _require(CHROMIUM is not None, "no chromium: apt-get install chromium")
    repo = tmp_path_factory.mktemp("plots_repo")
    shutil.copy2(ROOT / "dvc.yaml", repo / "dvc.yaml")
    shutil.copytree(ROOT / ".dvc", repo / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp", "config.local"))
    listed = subprocess.run(["git", "ls-tree", "--name-only", "HEAD", "params.yaml", "plots/", "figures/"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    for rel in listed:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_bytes(_committed(rel))
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(git + ["add", "-A"], cwd=repo, check=True)
    subprocess.run(git + ["commit", "-qm", "committed run"], cwd=repo, check=True)
    return repo


def plots_diff(repo: Path, out: Path, *extra: str) -> Path:
    result = subprocess.run(["dvc", "plots", "diff", "HEAD", "-o", str(out), *extra], cwd=repo,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return out / "index.html"


def test_page_holds_the_locked_packages_and_no_cdn():
    _require(PAGE.is_file(), "no .dvc/plots/page.html: run `npm ci` (README set-up) to build it")
    lock = json.loads((ROOT / "package-lock.json").read_text())
    wanted = json.loads((ROOT / "package.json").read_text())["dependencies"]
    page = PAGE.read_text()
    for name in PACKAGES:
        locked = lock["packages"][f"node_modules/{name}"]
        assert locked["version"] == wanted[name] and locked["integrity"].startswith("sha512-"), name
        assert f"/* {name} {locked['version']} (" in page, name
    assert "{plot_divs}" in page and "{scripts}" not in page  # DVC's CDN script tags are never added
    assert not re.search(r"<script[^>]*\ssrc=", page)


def test_plots_diff_draws_every_chart_offline(plots_repo, tmp_path):
    """Written outside the repository (-o): the page needs nothing beside it but DVC's own static/ images."""
    index = plots_diff(plots_repo, tmp_path / "elsewhere" / "plots-diff")
    assert not re.search(r"<script[^>]*\ssrc=", index.read_text())
    found = charts(index, tmp_path)
    assert len(found.marks) == len(_vega_plots()), found.marks
    blank = [chart for chart, n in found.marks.items() if n == 0]
    assert not blank, f"charts with no marks offline: {blank}"
    for chart, text in found.text.items():  # both revisions in each chart's legend
        assert "HEAD" in text and "workspace" in text, (chart, text[:300])
    assert "vega-embed could not draw" not in "".join(found.text.values())
    images = list((index.parent / "static").glob("*.png"))
    assert len(images) == len(list((plots_repo / "figures").glob("*.png"))) * 2  # HEAD's and the workspace's


@pytest.mark.slow  # a second dvc run and browser start; the control of the test above
def test_dvcs_own_page_draws_nothing_offline(plots_repo, tmp_path):
    from dvc_render.html import PAGE_HTML

    cdn_page = tmp_path / "dvc_default_page.html"
    cdn_page.write_text(PAGE_HTML)
    index = plots_diff(plots_repo, tmp_path / "cdn", "--html-template", str(cdn_page))
    assert 'src="https://cdn.jsdelivr.net/npm/vega' in index.read_text()
    found = charts(index, tmp_path)
    assert len(found.marks) == len(_vega_plots()) and set(found.marks.values()) == {0}, found.marks
