"""Figs 1-3 keep the authors' look without importing seaborn: the written-out theme is seaborn's own."""
import json
import subprocess
import sys

import pytest

from erasure.plotting.style import SEABORN_DARKGRID_DEEP

# In a fresh process (a theme is global state): every rcParam the setup changes, as text; the colour cycle as RGBA.
PROBE = """
import json, matplotlib
matplotlib.use("Agg")
from matplotlib.colors import to_rgba
base = dict(matplotlib.rcParams)
{setup}
changed = {{k: v for k, v in matplotlib.rcParams.items() if base.get(k) != v}}
print(json.dumps({{k: [to_rgba(c) for c in v.by_key()["color"]] if k == "axes.prop_cycle" else str(v)
                  for k, v in changed.items()}}))
"""


def _theme(setup: str) -> dict:
    code = PROBE.format(setup=setup)
    return json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                     timeout=120).stdout)


@pytest.mark.slow  # importing seaborn (and scipy.stats) takes seconds
def test_written_out_theme_is_seaborns_darkgrid_deep():
    ours = _theme("from erasure.plotting.style import seaborn_style; seaborn_style()")
    theirs = _theme("import seaborn; seaborn.set_theme(style='darkgrid', palette='deep')")
    # seaborn also registers its colormaps and makes 'rocket' the default image map: Figs 1-3 draw no image
    theirs.pop("image.cmap")
    assert ours == theirs
    assert len(ours) == len(SEABORN_DARKGRID_DEEP)
    assert _theme("import erasure.plotting.style") == {}  # importing the module changes nothing; calling it does
