"""Fig 1 stays readable for deep models: at most about 14 labelled ticks, the key checkpoints always among them;
the paper's Fig 1 table keeps the key rows (all rows are in metrics/fig1_resid.json)."""
from __future__ import annotations

from erasure.mechanism.names import checkpoint_names
from erasure.paper.context import key_checkpoints
from erasure.plotting.figs123 import labelled_checkpoints


def test_a_4_layer_model_labels_every_checkpoint():
    names = checkpoint_names(4)
    assert labelled_checkpoints(names, ["resid_post1", "resid_mid2"]) == set(names)
    assert key_checkpoints(names, {}, "L0H2") == names


def test_a_30_layer_model_labels_a_readable_few_including_the_key_ones():
    names = checkpoint_names(30)  # SmolLM2-135M: 61 checkpoints
    assert len(names) == 61
    key = ["resid_mid22", "resid_post21"]  # the erasure checkpoint first: adjacent to the entering one
    shown = labelled_checkpoints(names, key)
    index = sorted(names.index(n) for n in shown)
    assert len(shown) <= 16 and {names[0], names[-1], "resid_mid22"} <= shown
    assert min(b - a for a, b in zip(index, index[1:])) >= 2  # no two labels on neighbouring ticks
    fig1 = {"entering_checkpoint": "resid_post21", "erasure_checkpoint": "resid_mid22"}
    assert key_checkpoints(names, fig1, "L19H2") == [
        "resid_pre0", "resid_mid19", "resid_post21", "resid_mid22", "resid_post22", "resid_post29"]
    assert key_checkpoints(names, fig1, "MLP11") == [
        "resid_pre0", "resid_post11", "resid_post21", "resid_mid22", "resid_post22", "resid_post29"]
