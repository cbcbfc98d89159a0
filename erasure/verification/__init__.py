"""The claims registry, its checks against the metrics, the verification report, provenance and regression."""
