"""Progress of the long loops: tqdm's bar on a terminal only; off one (a log file, CI, `dvc exp run > log`), one
line per finished step instead of a bar's carriage returns.

The terminal test is tqdm's own (`disable=None`: no bar when its stream, stderr, is not a terminal; TQDM_DISABLE
set also hides the bar). erasure/stage.py applies the same rule to transformers' and huggingface_hub's bars.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


class Steps:
    """A bar of `total` steps on a terminal; elsewhere the line `desc: done/total unit (s)` when closed."""

    def __init__(self, desc: str, total: int, unit: str, leave: bool = True):
        self.desc, self.total, self.unit = desc, total, unit
        self.done = 0
        self._start = time.perf_counter()
        self._bar = tqdm(total=total, desc=desc, unit=unit, leave=leave, disable=None)
        self._log = self._bar.disable  # before close(), which sets it

    def update(self, n: int = 1) -> None:
        self.done += n
        self._bar.update(n)

    def close(self) -> None:
        self._bar.close()
        if self._log:  # stdout, beside the stages' own summary lines; stderr keeps only errors
            print(f"{self.desc}: {self.done}/{self.total} {self.unit} ({time.perf_counter() - self._start:.1f} s)",
                  flush=True)

    def __enter__(self) -> Steps:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(items: Iterable[T], desc: str, unit: str = "it", total: int | None = None,
             leave: bool = True) -> Iterator[T]:
    """`items`, with a bar on a terminal and one line when the loop ends elsewhere."""
    with Steps(desc, len(items) if total is None else total, unit, leave) as steps:  # type: ignore[arg-type]
        for item in items:
            yield item
            steps.update()
