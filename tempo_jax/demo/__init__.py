"""The CPU demo: TEMPO against its baselines on a synthetic arithmetic task, end to end."""

from tempo_jax.demo.pipeline import run_demo

__all__ = ["run_demo"]
