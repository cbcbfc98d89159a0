"""The percentile interval of discovery's prompt bootstrap (erasure.analysis.discovery.bootstrap), in numpy only:
the compare stage reads its level without importing torch."""
from __future__ import annotations

import numpy as np

CI = (2.5, 97.5)


def interval(samples: np.ndarray) -> list[float] | None:
    """The percentile interval of finite bootstrap samples (None if there are none)."""
    samples = np.asarray(samples, dtype=np.float64)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return None
    lo, hi = np.percentile(samples, CI)
    return [float(lo), float(hi)]  # rounded once, when the record is written (erasure.io.round_significant)
