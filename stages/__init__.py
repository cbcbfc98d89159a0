"""The DVC stages: one thin script per dvc.yaml stage (`python -m stages.X`); the logic lives in erasure/."""
