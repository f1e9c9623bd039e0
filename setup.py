"""Packaging for tempo_jax: TEMPO test-time training on JAX/TPU."""

from setuptools import find_packages, setup

setup(
    name="tempo_jax",
    version="0.1.0",
    description="TEMPO (test-time training as EM) and its baselines on JAX/TPU",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tempo_jax", "tempo_jax.*"]),
    install_requires=[
        "jax>=0.6",
        "flax>=0.11",
        "optax",
        "orbax-checkpoint",
        "ml-collections",
        "numpy",
        "safetensors",
        "tokenizers",
        "transformers",
        "tensorflow-datasets",
        "importlib_resources",  # TFDS 4.9 looks builder code up through it
        "ml_dtypes",
        "array-record",
        "pyarrow",
        "math-verify",
        "pebble>=5.0,<6",  # the grading process pool (rewards/pool.py)
        "scipy>=1.10",  # rankdata for AUROC (eval/metrics.py); jax depends on it too
        "sympy",
        "matplotlib",
        "tqdm",
        "tensorboardX",
    ],
    extras_require={
        # torch is only the parity reference; the pin takes the CPU build on disk.
        # ruff and mypy are the lint, format and type checks .ci/run runs (settings in pyproject.toml).
        "test": ["pytest", "pytest-xdist", "torch==2.13.0", "ruff>=0.8,<1", "mypy>=1.13,<2"],
        "cuda": ["jax[cuda12]"],
        "tpu": ["jax[tpu]"],
        # compile for a TPU topology on a CPU host (tempo-jax plan); matches jax[tpu]'s pin
        "plan": ["libtpu==0.0.42.*"],
    },
    entry_points={"console_scripts": ["tempo-jax=tempo_jax.cli:main"]},
)
