"""Progress bars on a terminal only (erasure/progress.py, tqdm's own test); a log gets one line per finished step,
and the Hugging Face libraries' bars (transformers: loading weights, converting a GGUF) are hidden off a terminal
by run_stage. Each case runs in a fresh process whose stderr is either a pipe (a log) or a pseudo-terminal."""
from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

from helpers import write_params

ROOT = Path(__file__).resolve().parents[2]
LOOP = """
from erasure.progress import Steps, progress
for _ in progress(range(5), desc="clean pass", unit="batch"):
    pass
with Steps("V-comp", total=6, unit="run") as steps:
    steps.update(4)
    steps.update(2)
"""
LIBRARIES = """
import os
from erasure.stage import run_stage

def main(params):
    import transformers.utils.logging as tl
    print("HF_HUB_DISABLE_PROGRESS_BARS", os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS"))
    print("transformers bars", tl.is_progress_bar_enabled())

run_stage(main)
"""


def _run(code: str, cwd: Path, terminal: bool) -> tuple[str, str]:
    """(stdout, what reached stderr): stderr is a pseudo-terminal when `terminal`, else a pipe."""
    env = {k: v for k, v in os.environ.items() if k not in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS")}
    env["PYTHONPATH"] = str(ROOT)
    if not terminal:
        done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout, done.stderr
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide
    try:
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=follower, text=True)
        os.close(follower)
        stdout, _ = proc.communicate(timeout=300)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")
    return stdout, b"".join(chunks).decode(errors="replace")


def test_off_a_terminal_one_line_per_finished_step_and_no_bar(tmp_path):
    stdout, stderr = _run(LOOP, tmp_path, terminal=False)
    lines = stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("clean pass: 5/5 batch (") and lines[0].endswith(" s)"), stdout
    assert lines[1].startswith("V-comp: 6/6 run ("), stdout
    assert stderr == "" and "\r" not in stdout


def test_on_a_terminal_the_bar_and_no_line(tmp_path):
    """The control of the test above: tqdm draws on a terminal (carriage returns, the counts), and the log line
    is not added."""
    stdout, terminal = _run(LOOP, tmp_path, terminal=True)
    assert stdout == ""
    assert "\r" in terminal and "clean pass: 100%" in terminal and "5/5" in terminal and "6/6" in terminal, terminal


def test_hugging_face_bars_hidden_off_a_terminal_only(tmp_path):
    write_params(tmp_path)  # run_stage checks params first
    off, _ = _run(LIBRARIES, tmp_path, terminal=False)
    assert off.splitlines() == ["HF_HUB_DISABLE_PROGRESS_BARS 1", "transformers bars False"], off
    on, _ = _run(LIBRARIES, tmp_path, terminal=True)
    assert on.splitlines() == ["HF_HUB_DISABLE_PROGRESS_BARS None", "transformers bars True"], on
