"""erasure-repro: the reproduction of "An adversarial example for Direct Logit Attribution" (docs/DESIGN.md)."""
