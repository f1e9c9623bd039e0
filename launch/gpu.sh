#!/usr/bin/env bash
# Run a tempo_jax recipe on one GPU node (all its GPUs in one process) with jax[cuda12].
#
#   launch/gpu.sh install   # virtualenv + pip install -e .[cuda] (jax[cuda12])
#   launch/gpu.sh train     # tempo-jax train on every local GPU; log tee'd to $RUN_DIR/train.log
#   launch/gpu.sh resume    # the same with --resume
#
# Settings (environment variables; defaults in brackets):
#   CONFIG [configs/paper.py:qwen3_8b,tempo]   RUN_DIR [runs/gpu]   VENV [.venv-gpu]
#   MESH [(1,-1,1)]: (data, fsdp, tensor); -1 = every remaining GPU. The paper recipes name TPU meshes
#     (tensor 4); on 8 GPUs of one node pure FSDP over NVLink is the usual choice.
#   ROLLOUT_MESH [(-1,1,1)]: sampler mesh (weights replicated per GPU when they fit; else (1,-1,1)).
#   OVERRIDES ['']: extra --config.x=y flags (model and data paths).
# Several nodes: run this on each with TEMPO_JAX_COORDINATOR=host0:port TEMPO_JAX_NUM_PROCESSES=N
# TEMPO_JAX_PROCESS_ID=i (tempo_jax.parallel.distributed), or under SLURM with TEMPO_JAX_DISTRIBUTED=auto.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONFIG=${CONFIG:-configs/paper.py:qwen3_8b,tempo}
RUN_DIR=${RUN_DIR:-runs/gpu}
VENV=${VENV:-$ROOT/.venv-gpu}
MESH=${MESH:-(1,-1,1)}
ROLLOUT_MESH=${ROLLOUT_MESH:-(-1,1,1)}
OVERRIDES=${OVERRIDES:-}

install() {
  python3 -m venv "$VENV"
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
  pip install --upgrade pip
  pip install -e "${ROOT}[cuda]"
  python -c 'import jax; print(jax.devices())'
}

train() {  # $1: extra flags (e.g. --resume)
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
  mkdir -p "$RUN_DIR"
  # Let XLA take most of each GPU (the default preallocates 75%) and overlap collectives with compute.
  export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.92}
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_gpu_enable_latency_hiding_scheduler=true"
  cd "$ROOT"
  # shellcheck disable=SC2086  # OVERRIDES is a list of flags
  tempo-jax train --config "$CONFIG" --config.run_dir="$RUN_DIR" "--config.mesh.shape=$MESH" \
    "--config.mesh.rollout_shape=$ROLLOUT_MESH" $OVERRIDES "$@" 2>&1 | tee -a "$RUN_DIR/train.log"
}

case "${1:-}" in
  install) install ;;
  train) train ;;
  resume) train --resume ;;
  *)
    sed -n '2,17p' "$0"
    exit 2
    ;;
esac
