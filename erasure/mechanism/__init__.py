"""The mechanism primitives every analysis shares: names, hooks, projection, V-composition patch, DLA, statistics."""
