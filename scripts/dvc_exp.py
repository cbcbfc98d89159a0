"""`dvc exp show --json`, as the scripts that read experiments need it: run with this environment's DVC, a failure
one line (a DataError naming the command and DVC's last line)."""
from __future__ import annotations

import json
import subprocess
import sys

from erasure.errors import DataError


def exp_show(all_commits: bool = False) -> list:
    cmd = ["dvc", "exp", "show", "--json"] + (["-A"] if all_commits else [])
    run = subprocess.run([sys.executable, "-m", *cmd], capture_output=True, text=True)
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no message"])[-1]
        raise DataError(f"`{' '.join(cmd)}` failed: {last}")
    try:
        return json.loads(run.stdout)
    except json.JSONDecodeError as err:
        raise DataError(f"`{' '.join(cmd)}` did not print JSON ({err})") from None
