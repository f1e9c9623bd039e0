"""Shared settings of the tiny CPU recipes: a random 2-layer model and toy a+b problems,
created on first use under runs/tiny_assets (see tempo_jax/train/tiny.py)."""
from tempo_jax.train.tiny import tiny_recipe as tiny  # noqa: F401
