"""Keyword spotting (Speech Commands) in JAX/Flax."""
