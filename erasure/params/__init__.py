"""params.yaml, typed: one model per section, every bound in one place, unknown keys rejected by name."""
