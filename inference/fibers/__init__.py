"""Fiber sampling: NDTM guidance of a pretrained prior, refinement, the conditional fiber model, fiber metrics."""
