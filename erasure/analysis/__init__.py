"""One module per pipeline analysis: prompts, activations, discovery, Figs 1-3, Fig 4, Fig 5."""
