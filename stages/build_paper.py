"""Stage paper: render paper/template.md with the metrics, figures and verification report into
paper/paper.md and a self-contained paper/paper.html (figures as data URIs, CSS inline)."""
from pathlib import Path

from erasure.io import OutputSet
from erasure.paper.build import build
from erasure.params.load import Params
from erasure.paths import PAPER_HTML, PAPER_MD
from erasure.stage import run_stage
from erasure.verification.registry import load_claims


def main(params: Params) -> None:
    registry = load_claims()
    md_text, html_text = build(Path("."), params.raw, registry)
    with OutputSet() as out:  # replaced together: never the md of one run beside the html of another
        out.text(PAPER_MD, md_text)
        out.text(PAPER_HTML, html_text)
    missing = md_text.count("[missing:") + md_text.count("[not a ")
    print(f"paper ({params.model}): {PAPER_MD}, {PAPER_HTML} ({len(html_text) // 1024} KiB)"
          + (f"; {missing} value(s) missing from the metrics or of the wrong type (shown as [missing: ...] or "
             "[not a ...])" if missing else ""))


if __name__ == "__main__":
    run_stage(main)
