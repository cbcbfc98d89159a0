"""A hostile environment (issue 9's `leftover` class): a full disk, a read-only file system, SIGTERM and kill -9
in the middle of a stage, and `dvc repro` after a kill -9 mid-activations. Each fault ends in one line (or, for
SIGKILL, in nothing a later run keeps): no traceback, no SIGBUS, no temp file left once a good run has followed.

Disk full and read-only are real: a small tmpfs (root can mount one; CI runs as root) mounted over the output
folder of a scratch run and unmounted in a `finally`. Processes are started here and signalled by their own PID.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch

from erasure.analysis.prompt_files import save_prompts
from helpers import copy_checkout, write_params

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"}  # no progress bars: stderr is the one line
MODEL = "planted-4l"


def mount_tmpfs(target: Path, size: str, read_only: bool = False) -> None:
    options = f"size={size}" + (",ro" if read_only else "")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {result.stderr.strip()}")


@contextmanager
def tmpfs(target: Path, size: str, keep: Path | None = None, read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of `size` over `target` (its files copied in first from `keep`), read-only if asked; unmounted
    after, whatever happens."""
    target.mkdir(parents=True, exist_ok=True)
    mount_tmpfs(target, size)
    try:
        if keep is not None:
            shutil.copytree(keep, target, dirs_exist_ok=True)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(target)], check=True)
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def snapshot(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Every file under root (hidden ones too, folders in `skip` left out) with the sha256 of its bytes."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith(skip):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def scratch_run(root: Path, n_text: int, n_code: int, seq_len: int) -> Path:
    """params (planted-4l, batches of one prompt) and a prompt set of that shape (random ids, BOS first)."""
    sizes = {"n_text": n_text, "n_code": n_code, "seq_len": seq_len}
    write_params(root, lambda raw: (raw["models"][MODEL]["prompts"].update(sizes),
                                    raw["activations"].update(batch_size=1),
                                    raw["fig4"]["code_variant"].update(start_pos=2)))
    tokens = np.random.default_rng(0).integers(3, 1000, size=(n_text + n_code, seq_len), dtype=np.int64)
    tokens[:, 0] = 1
    save_prompts(root / "data/prompts", torch.from_numpy(tokens),
                 {"model": MODEL, "n_text": n_text, "n_code": n_code, "is_code": [False] * n_text + [True] * n_code})
    return root


def run(stage: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def assert_one_line(result: subprocess.CompletedProcess, expected: str, code: int = 2) -> None:
    assert result.returncode == code, result.stderr[-3000:]
    assert result.stderr.splitlines() == [expected], result.stderr[-3000:]


def wait_for(path: Path, proc: subprocess.Popen | psutil.Process, timeout: float = 600) -> None:
    """Until `path` exists, while the process still runs (a stage that ended first fails the test)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        running = proc.poll() is None if isinstance(proc, subprocess.Popen) else proc.is_running()
        assert running, f"the process ended before {path} appeared"
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.01)


TEMP_TABLE = "data/.activations.tmp/resid_pr.npy"  # erasure.io.temp_path(data/activations): the pass has begun


def test_disk_full_while_the_tables_are_allocated(tmp_path):
    """64 KiB for data/: the prompts fit, the tables do not. posix_fallocate says ENOSPC before the first batch
    (open_memmap alone made a sparse file, and the first write to a missing page was a SIGBUS)."""
    work = scratch_run(tmp_path, 14, 2, 64)
    prompts = tmp_path / "prompts_copy"
    shutil.copytree(work / "data", prompts)
    shutil.rmtree(work / "data")
    with tmpfs(work / "data", "64k", keep=prompts):
        before = snapshot(work)
        result = run("activations", work)
        assert_one_line(result, "error: cannot write data/activations: No space left on device (ENOSPC)")
        assert snapshot(work) == before


def test_disk_full_while_the_last_outputs_are_written(tmp_path):
    """One 4 KiB page for metrics/: the whole pass ran and its tables, atlas and points are written (into their
    temps), then metrics/discovery.json (tens of KB) does not fit. Every output of the stage goes with the error:
    none is renamed into place before all are written."""
    work = scratch_run(tmp_path, 3, 1, 32)
    with tmpfs(work / "metrics", "4k"):
        before = snapshot(work)
        result = run("activations", work)
        assert_one_line(result, "error: cannot write metrics/discovery.json: No space left on device (ENOSPC)")
        assert snapshot(work) == before


@pytest.mark.parametrize("read_only, expected", [
    (False, "error: cannot write figures/fig1_resid.png: No space left on device (ENOSPC)"),
    (True, "error: cannot write figures/fig1_resid.png: Read-only file system (EROFS)"),
])
def test_a_figure_on_a_full_or_read_only_disk(tmp_path, read_only, expected):
    """One 4 KiB page for figures/ (a PNG is tens of KB), or a read-only figures/: one line, nothing written."""
    from test_bad_input import build_inputs

    build_inputs(tmp_path)
    with tmpfs(tmp_path / "figures", "4k", read_only=read_only):
        before = snapshot(tmp_path)
        assert_one_line(run("fig1_resid", tmp_path), expected)
        assert snapshot(tmp_path) == before


def test_read_only_data(tmp_path):
    """The prompts stage on a read-only data/: one line naming the output, nothing written."""
    write_params(tmp_path, lambda raw: (raw["models"][MODEL]["prompts"].update(n_text=2, n_code=1, seq_len=32),
                                        raw["fig4"]["code_variant"].update(start_pos=2)))
    with tmpfs(tmp_path / "data", "1m", read_only=True):
        before = snapshot(tmp_path)
        assert_one_line(run("prompts", tmp_path), "error: cannot write data/prompts: Read-only file system (EROFS)")
        assert snapshot(tmp_path) == before


def test_sigterm_mid_activations_removes_the_temp_folder(tmp_path):
    work = scratch_run(tmp_path, 30, 2, 128)
    before = snapshot(work)
    proc = subprocess.Popen([sys.executable, "-m", "stages.activations"], cwd=work, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(work / TEMP_TABLE, proc)
        os.kill(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 143 and stderr.splitlines() == ["error: terminated (SIGTERM)"], stderr
    assert snapshot(work) == before


def small_pipeline(params: dict) -> None:
    """planted-4l on 8 prompts of 64 tokens, batches of one (the activation pass lasts long enough to be killed);
    the planted checks are reported but do not stop the run (a FAIL never does: 8 prompts are too few for their
    tolerances, and this test is about the files)."""
    params["model"] = MODEL
    params["models"][MODEL]["prompts"].update(n_text=6, n_code=2, seq_len=64)
    params["activations"].update(batch_size=1, n_dla_prompts=4)
    params["discovery"].update(n_vcomp_prompts=4)
    params["fig4"].update(n_prompts=4, code_variant={"n_prompts": 4, "start_pos": 8})
    params["stats"]["n_bootstrap"] = 50
    params["fig5"]["n_resample"] = 8


def child_running(pid: int, marker: str) -> psutil.Process | None:
    """The running descendant of `pid` whose command line contains `marker` (finished stages are skipped)."""
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and marker in " ".join(child.cmdline()):
                return child
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return None


def stop(proc: subprocess.Popen) -> None:
    """After a failed assertion: end a dvc we started and its stage processes, each by its own PID."""
    if proc.poll() is None:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
    proc.wait()


DVC_SCRATCH = (".git/", ".dvc/tmp/")  # git's own store (the two copies' commits are equal) and DVC's locks/index


def test_dvc_repro_after_kill_9_mid_activations_equals_a_clean_run(tmp_path):
    """Issue 9, must show: `dvc repro`, the activations stage killed with SIGKILL mid-pass, then `dvc repro` again:
    every file of the tree (outputs, dvc.lock, DVC's cache) equals a clean run's, `git status` and `dvc status`
    agree, and no temp file is left."""
    clean = copy_checkout(tmp_path / "clean", small_pipeline)
    killed = copy_checkout(tmp_path / "killed", small_pipeline)
    repro = ["dvc", "repro"]
    log = (tmp_path / "clean.log").open("w")
    reference = subprocess.Popen(repro, cwd=clean, stdout=log, stderr=subprocess.STDOUT)  # alongside the rest
    dvc = subprocess.Popen(repro, cwd=killed, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        stage = None
        deadline = time.monotonic() + 1200
        while stage is None:
            assert dvc.poll() is None and time.monotonic() < deadline, "dvc ended before the activations stage ran"
            stage = child_running(dvc.pid, "stages.activations")
            time.sleep(0.05)
        wait_for(killed / TEMP_TABLE, stage)
        stage.send_signal(signal.SIGKILL)  # psutil signals this PID (and checks it was not reused)
        assert dvc.wait(timeout=600) != 0
        assert (killed / TEMP_TABLE).exists()  # the kill left the pass's temp folder
        again = subprocess.run(repro, cwd=killed, capture_output=True, text=True, timeout=1800)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        assert reference.wait(timeout=1800) == 0, (tmp_path / "clean.log").read_text()[-3000:]
    finally:
        for proc in (dvc, reference):
            stop(proc)
        log.close()

    assert snapshot(killed, DVC_SCRATCH) == snapshot(clean, DVC_SCRATCH)
    assert not list(killed.rglob("*.tmp"))
    for cmd in (["git", "status", "--porcelain"], ["dvc", "status"]):
        outs = [subprocess.run(cmd, cwd=d, capture_output=True, text=True, check=True).stdout for d in (clean, killed)]
        assert outs[0] == outs[1], (cmd, outs)
    assert "up to date" in outs[1]


# ---- issue 21: a stage's outputs are replaced as one set --------------------------------------------------------
# A figure stage (fig4_dla: 2 metrics, 2 plot files, 1 PNG) and the paper stage (md + html), each with its previous
# set in place (marked `old`, so a replaced file shows): a full disk and a read-only target partway through the set
# end in one line, and every previous output is left as it was -- what DVC recorded for them stays true.

FIG4_SET = ["metrics/fig4_dla.json", "metrics/aligned_tokens.json", "plots/fig4_dla.csv", "plots/aligned_tokens.csv",
            "figures/fig4_dla.png"]
PAPER_SET = ["paper/paper.md", "paper/paper.html"]


def inputs_with_old_set(root: Path, outputs: list[str], figures: bool = False) -> Path:
    from test_bad_input import build_inputs

    build_inputs(root)
    if figures:  # the committed figures: the paper's html then holds ~1 MB of data URIs, its md ~20 KB
        shutil.copytree(REPO / "figures", root / "figures", dirs_exist_ok=True)
    for rel in outputs:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"old {rel}\n")
    return root


@contextmanager
def read_only_file(path: Path) -> Iterator[None]:
    """`path` bind-mounted read-only onto itself: it can be read, not replaced (rename onto it: EBUSY)."""
    result = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot bind-mount here (needs root or CAP_SYS_ADMIN): {result.stderr.strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


def tmpfs_size_for(folder: Path, spare: int) -> str:
    """A tmpfs size holding `folder`'s files (whole 4 KiB pages) plus `spare` bytes."""
    used = sum(-(-p.stat().st_size // 4096) * 4096 for p in folder.rglob("*") if p.is_file())
    return f"{(used + spare) // 1024}k"


def test_the_control_run_replaces_every_output_of_the_set(tmp_path):
    """Without a fault the same stages replace every `old` file: the faults below are what keeps them."""
    root = inputs_with_old_set(tmp_path, FIG4_SET + PAPER_SET, figures=True)
    for stage in ("fig4_dla", "build_paper"):
        result = run(stage, root)
        assert result.returncode == 0, result.stderr[-3000:]
    assert not [rel for rel in FIG4_SET + PAPER_SET if (root / rel).read_bytes().startswith(b"old ")]


def test_a_figure_stage_on_a_full_disk_keeps_its_old_set(tmp_path):
    """figures/ full: the two metrics and two plot files are written (into temps) before the PNG does not fit."""
    root = inputs_with_old_set(tmp_path, FIG4_SET)
    keep = tmp_path / "figures_copy"
    shutil.copytree(root / "figures", keep)
    with tmpfs(root / "figures", tmpfs_size_for(keep, 4096), keep=keep):
        before = snapshot(root)
        assert_one_line(run("fig4_dla", root), "error: cannot write figures/fig4_dla.png: No space left on device "
                                                "(ENOSPC)")
        assert snapshot(root) == before


def test_a_figure_stage_with_a_read_only_folder_partway_keeps_its_old_set(tmp_path):
    """plots/ read-only: the metrics are written (into temps), the plot data cannot be."""
    root = inputs_with_old_set(tmp_path, FIG4_SET)
    keep = tmp_path / "plots_copy"
    shutil.copytree(root / "plots", keep)
    with tmpfs(root / "plots", "1m", keep=keep, read_only=True):
        before = snapshot(root)
        assert_one_line(run("fig4_dla", root), "error: cannot write plots/fig4_dla.csv: Read-only file system "
                                                "(EROFS)")
        assert snapshot(root) == before


def test_a_figure_stage_with_a_read_only_file_partway_keeps_its_old_set(tmp_path):
    """Every temp is written; then metrics/aligned_tokens.json (the set's second output) cannot be replaced. The
    first, already moved aside, is put back: the commit is all or nothing."""
    root = inputs_with_old_set(tmp_path, FIG4_SET)
    with read_only_file(root / "metrics/aligned_tokens.json"):
        before = snapshot(root)
        assert_one_line(run("fig4_dla", root), "error: cannot write metrics/aligned_tokens.json: Device or "
                                                "resource busy (EBUSY)")
        assert snapshot(root) == before


def test_the_paper_on_a_full_disk_keeps_its_old_md_and_html(tmp_path):
    """paper/ has room for the new md (~20 KB), not the html (~1 MB): the old pair stays, not a new md beside an
    old html."""
    root = inputs_with_old_set(tmp_path, PAPER_SET, figures=True)
    keep = tmp_path / "paper_copy"
    shutil.copytree(root / "paper", keep)
    with tmpfs(root / "paper", tmpfs_size_for(keep, 256 * 1024), keep=keep):
        before = snapshot(root)
        assert_one_line(run("build_paper", root), "error: cannot write paper/paper.html: No space left on device "
                                                   "(ENOSPC)")
        assert snapshot(root) == before


def test_the_paper_with_a_read_only_html_keeps_its_old_md(tmp_path):
    root = inputs_with_old_set(tmp_path, PAPER_SET, figures=True)
    with read_only_file(root / "paper/paper.html"):
        before = snapshot(root)
        assert_one_line(run("build_paper", root), "error: cannot write paper/paper.html: Device or resource busy "
                                                   "(EBUSY)")
        assert snapshot(root) == before
