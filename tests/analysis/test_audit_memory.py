"""keep_freed_memory (erasure/analysis/audit.py): after it, a large block freed and allocated again reuses the
process's own pages instead of faulting in fresh ones from the kernel. Checked in a child process (the setting is
process-wide) by its own page-fault count, against the same loop without the call."""
import platform
import subprocess
import sys

import pytest

CHILD = """
import resource, sys
import torch
if sys.argv[1] == "keep":
    from erasure.analysis.audit import keep_freed_memory
    assert keep_freed_memory()
torch.ones(2**25).sum()  # 128 MB of float32, above glibc's 32 MB mmap ceiling; the first one may fault either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    torch.ones(2**25).sum()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
PAGES = 2**27 // 4096  # pages of one 128 MB block


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True, timeout=60)
    return int(out.stdout)


@pytest.mark.slow  # two child processes importing torch and TransformerLens: ~10 s
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt settings are glibc's")
def test_freed_blocks_are_reused_not_refaulted():
    assert _faults("default") >= 4 * PAGES  # glibc's default: each 128 MB block mapped and faulted in anew
    # kept: the blocks reuse the warm-up's pages; observed 0, or once in a few runs one block's worth (a block
    # placed anew once, e.g. beside something allocated in between), never more
    assert _faults("keep") <= PAGES
