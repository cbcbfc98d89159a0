"""Every figure of the pipeline, drawn from its metrics, in one shared style."""
