"""Stage paper: render paper/template.md with the metrics, figures and verification report into
paper/paper.md and a self-contained paper/paper.html (figures as data URIs, CSS inline)."""
from pathlib import Path

from erasure.claims import load_claims
from erasure.cli import run_stage
from erasure.config import load_params
from erasure.io import atomic_write_text
from erasure.paper import OUT_HTML, OUT_MD, build


def main() -> None:
    params = load_params()
    registry = load_claims()
    md_text, html_text = build(Path("."), params.raw, registry)
    atomic_write_text(OUT_MD, md_text)
    atomic_write_text(OUT_HTML, html_text)
    missing = md_text.count("[missing:")
    print(f"paper ({params.model}): {OUT_MD}, {OUT_HTML} ({len(html_text) // 1024} KiB)"
          + (f"; {missing} value(s) missing from the metrics (shown as [missing: ...])" if missing else ""))


if __name__ == "__main__":
    run_stage(main)
