"""The model loaders: gelu-4l and other TransformerLens models from the Hub, planted-4l, SmolLM2-135M."""
