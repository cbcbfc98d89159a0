"""Shared fixtures. The tiers, by folder and marker:

- unit (tests/mechanism, tests/params, tests/verification, tests/paper, tests/plotting, tests/setup,
  tests/pipeline/test_stage_deps.py, tests/pipeline/test_stage_imports.py): no model, or a tiny random one; each
  file runs in seconds;
- integration on planted-4l (tests/analysis, tests/models/test_planted.py, tests/pipeline/test_bad_input.py):
  the planted model in memory (built once per session here), or a stage run on it in a scratch directory;
- slow (marker `slow`: SmolLM2, Gemma 3, the end-to-end `dvc repro` runs in tests/pipeline: planted-4l, gelu-4l through the
  stand-in Hub, the DVC remote; the stand-in Hub's own tests; a few seconds-long repeats of a path the fast tier
  covers, such as a second model build or a second Hub model): minutes;
  `pytest -m "not slow"` leaves them out, CI runs them all.

A step longer than about 30 s shows its progress: the end-to-end runs print each DVC stage as it starts
(`progress`), and `--durations` (CI) lists the slowest tests. No test reads what the workspace's params.yaml
selects: each writes the params it needs (helpers.repo_params, copy_checkout). No test reads the workspace's run
outputs either: a test about the committed run reads it from git HEAD (`committed`), so the suite passes with any
experiment applied.
"""
from __future__ import annotations

import pytest

from helpers import committed_run, copy_checkout, run_dvc, tiny_model


@pytest.fixture(scope="session")
def planted():
    """planted-4l and its truth (seed 0), shared by every test of the session: building it takes seconds."""
    from erasure.models.planted import build_planted_model
    from erasure.planted_truth import planted_truth

    return build_planted_model(seed=0), planted_truth()


@pytest.fixture(scope="session")
def progress(pytestconfig):
    """say(line): write a line to the terminal now, although pytest captures the test's output."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    reporter = pytestconfig.pluginmanager.getplugin("terminalreporter")

    def say(line: str) -> None:
        if reporter is None:  # -p no:terminal
            return
        with capture.global_and_fixture_disabled():
            reporter.ensure_newline()  # not after the dots of -q
            reporter.write_line(line)
    return say


@pytest.fixture(scope="session")
def committed(tmp_path_factory):
    """A scratch directory holding the committed run's outputs as at git HEAD (helpers.committed_run)."""
    return committed_run(tmp_path_factory.mktemp("committed"))


@pytest.fixture(scope="session")
def planted_run(tmp_path_factory, progress):
    """A fresh copy of the repository after `dvc repro` on planted-4l (the committed configuration): shared by the
    end-to-end tests (tests/pipeline/test_pipeline.py, test_remote.py), since a run takes minutes."""
    work = copy_checkout(tmp_path_factory.mktemp("clone"), lambda params: params.update(model="planted-4l"))
    result = run_dvc(["repro"], work, progress, timeout=1800)
    assert result.returncode == 0, result.stdout[-6000:]
    return work


@pytest.fixture(scope="module")
def tiny():
    """A tiny random model (erasure-free): exact hook arithmetic in milliseconds."""
    return tiny_model()
