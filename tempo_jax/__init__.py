"""tempo_jax: TEMPO test-time training (EM over actor and critic) on JAX."""

__version__ = "0.1.0"
