"""An HTML page as the tests read it: its images, table rows and visible text (standard library only)."""
from __future__ import annotations

from html.parser import HTMLParser


class Page(HTMLParser):
    """Collects images, table rows and visible text."""

    def __init__(self):
        super().__init__()
        self.images: list[dict] = []
        self.rows: list[list[str]] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "style":
            self._in_style = True

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        elif tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.style += data
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)



def parse(html_text: str) -> Page:
    page = Page()
    page.feed(html_text)
    return page
