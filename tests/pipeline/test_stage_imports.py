"""The stages that only read cached results and draw never import torch or TransformerLens (their start-up would
cost seconds per stage) nor seaborn (its theme is written out in erasure.plotting.style): importing every such
stage module -- they import what they use at the top -- loads none of them. tests/pipeline/test_pipeline.py
checks the same of real runs of these stages."""
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1].parent
MODEL_STAGES = {"prompts", "activations", "dla_audit"}  # the stages that run the model (or its tokenizer)
HEAVY = ("torch", "transformer_lens", "seaborn")


def drawing_stage_modules() -> list[str]:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return [spec["cmd"].split()[-1] for name, spec in stages.items() if name not in MODEL_STAGES]


def test_drawing_stages_import_no_torch_transformer_lens_or_seaborn():
    modules = drawing_stage_modules()
    assert len(modules) == 9 and "stages.fig4_dla" in modules and "stages.verify" in modules
    code = f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\nprint(sorted(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                            check=True)
    loaded = set(eval(result.stdout))
    assert "stages.fig4_dla" in loaded and "matplotlib" in loaded  # the check can see what was imported
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
