"""Shared fixtures. The tiers, by folder and marker:

- unit (tests/mechanism, tests/params, tests/verification, tests/paper, tests/pipeline/test_stage_deps.py): no
  model, or a tiny random one; each file runs in seconds;
- integration on planted-4l (tests/analysis, tests/models/test_planted.py, tests/pipeline/test_bad_input.py):
  the planted model in memory (built once per session here), or a stage run on it in a scratch directory;
- slow (marker `slow`: SmolLM2, Gemma 3, the end-to-end `dvc repro` in tests/pipeline/test_pipeline.py): minutes;
  `pytest -m "not slow"` leaves them out, CI runs them all.
"""
from __future__ import annotations

import pytest

from helpers import tiny_model


@pytest.fixture(scope="session")
def planted():
    """planted-4l and its truth (seed 0), shared by every test of the session: building it takes seconds."""
    from erasure.models.planted import build_planted_model, planted_truth

    return build_planted_model(seed=0), planted_truth()


@pytest.fixture(scope="module")
def tiny():
    """A tiny random model (erasure-free): exact hook arithmetic in milliseconds."""
    return tiny_model()
