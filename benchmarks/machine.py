"""What every benchmark record says of the machine and the run: load before and after (a noisy run can be told from a
real change), cores, torch's threads, the processor, the commit and the date."""
from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def machine_record(load_before: tuple[float, ...], load_after: tuple[float, ...]) -> dict:
    import torch

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    return {
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
