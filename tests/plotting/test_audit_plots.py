"""The DLA audit's figures draw from the records as the stages write them (synthetic, through the real pooling)."""
from erasure.plotting.audit import plot_audit, plot_depth
from synthetic_metrics import audit_metrics, comparison_metrics

PNG = b"\x89PNG\r\n\x1a\n"


def test_audit_figure_and_depth_figure(tmp_path):
    record = audit_metrics("planted-4l", "L0H2", ["L2H2", "L2H3"], 0.87)
    plot_audit(record, tmp_path / "audit.png", 60)
    assert (tmp_path / "audit.png").read_bytes()[:8] == PNG
    plot_depth({"planted-4l": record, "smollm2-135m": None}, tmp_path / "depth.png", 60)
    assert (tmp_path / "depth.png").read_bytes()[:8] == PNG


def test_comparison_carries_the_audits_it_was_given():
    """compare's `audit`: a row per model whose sweep record holds an audit, its most repaired first."""
    audit = comparison_metrics()["audit"]
    assert audit["models_run"] == ["planted-4l"] and audit["not_run"] == ["smollm2-135m", "gemma3-270m"]
    (row,) = audit["rows"]
    assert row["top"][0]["component"] == "L0H2" and row["top"][0]["repair_share"] > 0.8
    assert row["mean_shallow"] > row["mean_deep"] and row["grows_with_depth"] is False
