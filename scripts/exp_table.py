"""Experiments side by side, in the terminal's width: one row per param or headline metric that differs between
them, one column per experiment (the workspace and each baseline commit included).

    python -m scripts.exp_table                  # experiments of the current commit
    python -m scripts.exp_table -A --width 100   # of every commit; at most 100 characters wide

`dvc exp show` puts each changed value in a column of its own (a header as long as `metrics/headline/<claim>.json:
value`), so a few changes make it wider than a terminal; this reads the same data (`dvc exp show --json`) and
turns it over. Metrics are the DVC metrics, metrics/headline/ (stage verify): each claim's `value` and `status`
and the PASS/FAIL counts; their intervals with --intervals. Experiments that do not fit the width side by side
follow in further blocks, each with the row names again.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from erasure.errors import DataError
from erasure.paths import HEADLINE_DIR, PARAMS_FILE
from scripts.dvc_exp import exp_show

GAP = "  "
MIN_NAME = 24  # row names are cut (with …) to leave at least one column beside them


def _flatten(data: dict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _row(data: dict, intervals: bool) -> dict[str, object]:
    """One experiment's params (dotted keys) and headline metrics (`<claim> <field>`)."""
    params = ((data.get("params") or {}).get(str(PARAMS_FILE)) or {}).get("data") or {}
    row: dict[str, object] = _flatten(params)
    fields = ("value", "low", "high") if intervals else ("value",)
    for path, metric in sorted((data.get("metrics") or {}).items()):
        if not path.startswith(f"{HEADLINE_DIR}/"):
            continue
        for field, value in ((metric or {}).get("data") or {}).items():
            if field in (*fields, "status", "pass", "fail", "not_run"):
                row[f"{Path(path).stem} {field}"] = value
    return row


def collect(show: list[dict], intervals: bool = False) -> dict[str, dict[str, object]]:
    """From `dvc exp show --json`: column name -> its row, in DVC's order (workspace, baseline, its experiments)."""
    columns: dict[str, dict[str, object]] = {}
    for baseline in show:
        if baseline.get("data"):
            rev = baseline["rev"]  # the workspace's is "workspace"; a commit's name is its branch or tag, if any
            columns[baseline.get("name") or ("workspace" if rev == "workspace" else rev[:7])] = _row(
                baseline["data"], intervals)
        for exp_range in baseline.get("experiments") or []:
            if (exp_range.get("executor") or {}).get("state", "success") != "success":
                continue  # queued or running: its metrics are the baseline's, or half-written
            for exp in exp_range.get("revs") or []:
                if exp.get("data") and not exp.get("error"):
                    columns[exp.get("name") or exp["rev"][:7]] = _row(exp["data"], intervals)
    return columns


def _text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def table(columns: dict[str, dict[str, object]], width: int) -> str:
    """The rows that differ between columns; columns in blocks that fit `width` characters."""
    keys = list(dict.fromkeys(k for row in columns.values() for k in row))
    changed = [k for k in keys if len({_text(row.get(k)) for row in columns.values()}) > 1]
    if not changed:
        return f"no param or headline metric differs between {', '.join(columns)}"
    cells = {name: [_text(row.get(k)) for k in changed] for name, row in columns.items()}
    widths = {name: max(len(name), *map(len, values)) for name, values in cells.items()}
    name_width = max(map(len, changed))
    widest = max(widths.values())
    if name_width + len(GAP) + widest > width:  # cut the row names to leave room for one column
        name_width = max(MIN_NAME, width - len(GAP) - widest)
    names = [k if len(k) <= name_width else k[:name_width - 1] + "…" for k in changed]

    blocks, block, used = [], [], name_width
    for name in columns:
        if block and used + len(GAP) + widths[name] > width:
            blocks.append(block)
            block, used = [], name_width
        block.append(name)
        used += len(GAP) + widths[name]
    blocks.append(block)

    lines = []
    for block in blocks:
        if lines:
            lines.append("")
        lines.append(GAP.join([" " * name_width, *(n.rjust(widths[n]) for n in block)]).rstrip())
        for i, name in enumerate(names):
            lines.append(GAP.join([name.ljust(name_width), *(cells[n][i].rjust(widths[n]) for n in block)]).rstrip())
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Experiments side by side: the params and headline metrics that "
                                                 "differ, one column per experiment, within the terminal's width.")
    parser.add_argument("-A", "--all-commits", action="store_true", help="experiments of every commit, not only HEAD")
    parser.add_argument("--width", type=int, default=shutil.get_terminal_size().columns,
                        help="characters per line (default: the terminal's, else $COLUMNS, else 80)")
    parser.add_argument("--intervals", action="store_true", help="the metrics' 95%% intervals (low, high) too")
    args = parser.parse_args()
    if args.width < MIN_NAME + 12:
        raise DataError(f"--width {args.width} is too narrow: at least {MIN_NAME + 12} characters")
    print(table(collect(exp_show(args.all_commits), args.intervals), args.width))


if __name__ == "__main__":
    try:
        main()
    except DataError as err:  # one line, exit 2, as the stages do (it reads no params: run_stage is not needed)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
