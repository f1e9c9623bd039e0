#!/usr/bin/env bash
# Creates benchmarks/peers/.venv: Google's Tunix (google-tunix==0.1.7) next to tempo_jax, for
# benchmarks/peers/run.py. Tunix pins safetensors<0.8 (the project wants >=0.8), so it cannot live
# in the project's own environment. JAX, Flax and Optax are pinned to the project's tested versions
# so that both sides compile with the same XLA. tempo_jax goes in editable and without its
# dependencies; only the few packages its sampler / update code imports are added.
# Idempotent: re-running reuses the venv and skips what is already installed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --quiet)
# pip.conf here lists local index folders that lack most packages: drop its "is ignored" noise.
quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

# torch only so that benchmarks/sampler.py (HF_CONFIG, the checkpoint recipe, host_info, versions)
# imports: its CPU build of exactly this version lies on these machines' disk (an unpinned torch
# pulls a multi-GB CUDA build). Install it first, then Tunix (which brings transformers).
quiet "${pip[@]}" "torch==2.13.0"
quiet "${pip[@]}" \
  "google-tunix==0.1.7" \
  "jax[cpu]==0.10.2" "flax==0.12.8" "optax==0.2.8" \
  "ml-collections>=1.1,<2" "absl-py>=2.1,<3" "etils[epath]>=1.15,<2" "ml_dtypes>=0.7,<0.8"
quiet "${pip[@]}" --no-deps -e "$repo"

# The imports run.py needs on both sides; fails loudly if a dependency is missing.
"$venv/bin/python" - <<'PY'
import importlib.metadata as md
import tempo_jax.sampling.generate, tempo_jax.train.updates, tempo_jax.models.hf_io  # noqa: F401
import torch, transformers  # noqa: F401  (benchmarks/sampler.py)
import tunix.generate.sampler, tunix.models.qwen3.model, tunix.rl.ppo.ppo_learner  # noqa: F401
print("peers venv ready:", ", ".join(f"{p} {md.version(p)}" for p in ("google-tunix", "jax", "flax", "optax", "safetensors", "torch", "transformers")))
PY
