"""Every file and folder the pipeline reads or writes, relative to the repository root (dvc.yaml names the same)."""
from pathlib import Path

PARAMS_FILE = Path("params.yaml")
DVC_YAML = Path("dvc.yaml")
DVC_LOCK = Path("dvc.lock")

PROMPTS_DIR = Path("data/prompts")
ACTIVATIONS_DIR = Path("data/activations")
FIG4_POINTS = "fig4_points.npz"  # in ACTIVATIONS_DIR: paper Fig 4's DLA points
DISCOVERY_ATLAS = Path("data/discovery_atlas.npz")  # median PR of every (writer, later component) pair

METRICS = {  # stage output name -> file
    "fig1_resid": Path("metrics/fig1_resid.json"),
    "fig2_components": Path("metrics/fig2_components.json"),
    "fig3_heads": Path("metrics/fig3_heads.json"),
    "fig4_dla": Path("metrics/fig4_dla.json"),
    "fig5_adversarial": Path("metrics/fig5_adversarial.json"),
    "aligned_tokens": Path("metrics/aligned_tokens.json"),
    "discovery": Path("metrics/discovery.json"),
    "dla_audit": Path("metrics/dla_audit.json"),
}
METRIC_FILES = tuple(str(p) for p in METRICS.values())  # the claims' `file:` prefixes
INPUTS = Path("metrics/inputs.json")  # which Hub commits (and weights sha256) a run's inputs came from
SWEEP_DIR = Path("sweep")  # <model>.json: each model's discovery results, collected from DVC experiments
COMPARISON = Path("metrics/comparison.json")  # the sweep's models side by side (not a per-model metric)
AUDIT_HEADLINE = Path("metrics/audit_headline")  # DVC metrics rows of stage dla_audit: the most repaired components
HEADLINE_DIR = Path("metrics/headline")  # the DVC metrics: one small file per claim / planted check (stage verify)

PLOTS = {  # plot data for `dvc plots` (dvc.yaml `plots:` says how each is drawn); key -> file
    "fig1": Path("plots/fig1_resid.csv"),
    "fig2": Path("plots/fig2_components.csv"),
    "fig3": Path("plots/fig3_heads.csv"),
    "fig4": Path("plots/fig4_dla.csv"),
    "fig5": Path("plots/fig5_adversarial.csv"),
    "aligned_tokens": Path("plots/aligned_tokens.csv"),
    "writers": Path("plots/discovery_writers.csv"),
    "audit": Path("plots/dla_audit.csv"),
}

FIGURES = {  # key used by the paper template -> file
    "fig1": Path("figures/fig1_resid.png"),
    "fig2": Path("figures/fig2_components.png"),
    "fig3": Path("figures/fig3_heads.png"),
    "fig4": Path("figures/fig4_dla.png"),
    "fig5": Path("figures/fig5_adversarial.png"),
    "atlas": Path("figures/erasure_atlas.png"),
    "persistence": Path("figures/persistence.png"),
    "comparison": Path("figures/comparison.png"),
    "audit": Path("figures/dla_audit.png"),
    "audit_depth": Path("figures/dla_audit_depth.png"),
}

CLAIMS_FILE = Path("paper/claims.yaml")
TEMPLATE = Path("paper/template.md")
STYLE = Path("paper/style.css")
VERIFICATION_MD = Path("paper/verification.md")
VERIFICATION_JSON = Path("paper/verification.json")
PAPER_MD = Path("paper/paper.md")
PAPER_HTML = Path("paper/paper.html")
