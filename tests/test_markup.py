"""erasure.markup: text from data is inert in Markdown tables and prose, through python-markdown (the paper's
renderer): every character shows, no element or attribute is made, the table keeps its columns."""
from __future__ import annotations

from html.parser import HTMLParser

import markdown
import pytest

from erasure.markup import md_code, md_text

HOSTILE = ["</td><script>alert(1)</script>", "`|**x**`", "a|b", "``", "\\", "[x](javascript:alert(1))", "&lt;",
           "_a_", "<!--", "~~s~~", "<img src=x onerror=alert(1)>", "*", "]]>", "ordinary text 1.5"]


class Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list = []
        self.cells: list[str] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs
        if tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.cells.append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


@pytest.mark.parametrize("text", HOSTILE)
def test_data_text_shows_as_its_characters(text):
    source = f"| a | b |\n|---|---|\n| {md_code(text)} | {md_text(text)} |\n\ninline {md_code(text)}, {md_text(text)}\n"
    page = Elements()
    page.feed(markdown.markdown(source, extensions=["tables", "fenced_code", "sane_lists"]))
    assert set(page.tags) <= {"table", "thead", "tbody", "tr", "th", "td", "code", "p"}, page.tags
    assert page.attrs == []
    assert page.cells == [text, text]  # two columns, each the text itself
    assert "".join(page.text).count(text) >= 4


def test_line_breaks_stay_in_their_cell_and_plain_text_reads_the_same():
    assert md_text("class A:\n\tdef") == "class A:&#92;n&#92;tdef"  # shown as class A:\n\tdef
    assert md_text("The church I go to is the Seventh-day Adventist") == \
        "The church I go to is the Seventh-day Adventist"
