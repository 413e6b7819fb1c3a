"""The tiny μOmni models (seed 004)."""
