#!/usr/bin/env bash
# Run a tempo_jax recipe on a Cloud TPU VM or pod slice.
#
#   launch/tpu_vm.sh create   # gcloud: create the TPU VM / pod slice
#   launch/tpu_vm.sh setup    # copy this checkout to every worker, pip install -e .[tpu] (jax[tpu] + gcsfs)
#   launch/tpu_vm.sh plan     # (optional, local) tempo-jax plan for the slice before paying for it
#   launch/tpu_vm.sh train    # start the same command on all workers (--worker=all), then stream logs
#   launch/tpu_vm.sh logs     # stream worker 0's log again (Ctrl-C stops streaming, not training)
#   launch/tpu_vm.sh resume   # train with --resume (after a preemption or a stop)
#   launch/tpu_vm.sh stop     # stop training on every worker (SIGTERM: a checkpoint is saved first)
#   launch/tpu_vm.sh eval     # tempo-jax eval of the run's latest checkpoint on the whole slice (--mesh auto)
#   launch/tpu_vm.sh plot     # accuracy_vs_step.png / critic_auroc.png into the run directory
#   launch/tpu_vm.sh delete   # delete the TPU VM
#
# Settings (environment variables; defaults in brackets):
#   TPU_NAME [tempo-jax]   ZONE [us-east5-a]   PROJECT [gcloud's default project]
#   ACCELERATOR_TYPE [v5p-64]   RUNTIME_VERSION [chosen from the generation]   SPOT [0]
#   CONFIG [configs/paper.py:qwen3_14b,tempo]: a recipe file and its config string (<model>,<method>)
#   GCS_BUCKET   (required for train/eval: the run directory is gs://$GCS_BUCKET/$RUN_PATH)
#   RUN_PATH [runs/$TPU_NAME]   OVERRIDES ['']: extra --config.x=y flags, e.g. model paths
#   EVAL_ARGS ['--n 16']: extra flags for tempo-jax eval
#
# The run directory is a gs:// URL that every worker writes to directly: Orbax (TensorStore) writes each
# host's checkpoint shards into the bucket and commits a step with its own marker file (no folder renames,
# which a flat bucket cannot do atomically); metrics, TensorBoard, config, tokenizer, exports and eval
# outputs go through tempo_jax.storage (gcsfs). Models and data may be gs:// paths too (OVERRIDES).
set -euo pipefail

TPU_NAME=${TPU_NAME:-tempo-jax}
ZONE=${ZONE:-us-east5-a}
ACCELERATOR_TYPE=${ACCELERATOR_TYPE:-v5p-64}
CONFIG=${CONFIG:-configs/paper.py:qwen3_14b,tempo}
RUN_PATH=${RUN_PATH:-runs/$TPU_NAME}
OVERRIDES=${OVERRIDES:-}
SPOT=${SPOT:-0}
REMOTE_DIR=tempo_jax
LOG=/tmp/tempo_jax_train.log
PIDFILE=/tmp/tempo_jax_train.pid
ROOT=$(cd "$(dirname "$0")/.." && pwd)

case "$ACCELERATOR_TYPE" in
  v6e-*) DEFAULT_RUNTIME=v2-alpha-tpuv6e ;;
  v5p-*) DEFAULT_RUNTIME=v2-alpha-tpuv5 ;;
  v5litepod-*|v5e-*) DEFAULT_RUNTIME=v2-alpha-tpuv5-lite ;;
  *) DEFAULT_RUNTIME=tpu-ubuntu2204-base ;;
esac
RUNTIME_VERSION=${RUNTIME_VERSION:-$DEFAULT_RUNTIME}

GCLOUD_ARGS=(--zone "$ZONE")
if [ -n "${PROJECT:-}" ]; then GCLOUD_ARGS+=(--project "$PROJECT"); fi

need_bucket() {
  if [ -z "${GCS_BUCKET:-}" ]; then
    echo "set GCS_BUCKET (the run directory is gs://\$GCS_BUCKET/$RUN_PATH)" >&2
    exit 2
  fi
  RUN_DIR=gs://$GCS_BUCKET/$RUN_PATH
}

on_all() {  # run a shell command on every worker of the slice
  gcloud compute tpus tpu-vm ssh "$TPU_NAME" "${GCLOUD_ARGS[@]}" --worker=all --command "$1"
}

on_worker0() {
  gcloud compute tpus tpu-vm ssh "$TPU_NAME" "${GCLOUD_ARGS[@]}" --worker=0 --command "$1"
}

create() {
  local extra=()
  if [ "$SPOT" = "1" ]; then extra+=(--spot); fi
  gcloud compute tpus tpu-vm create "$TPU_NAME" "${GCLOUD_ARGS[@]}" \
    --accelerator-type "$ACCELERATOR_TYPE" --version "$RUNTIME_VERSION" "${extra[@]}"
}

setup() {
  local tarball
  tarball=$(mktemp -d)/tempo_jax.tar.gz
  tar -C "$ROOT" --exclude=.git --exclude=runs --exclude='.venv' --exclude='*.egg-info' -czf "$tarball" .
  gcloud compute tpus tpu-vm scp "$tarball" "$TPU_NAME":~/tempo_jax.tar.gz "${GCLOUD_ARGS[@]}" --worker=all
  on_all "set -e
    mkdir -p ~/$REMOTE_DIR && tar -C ~/$REMOTE_DIR -xzf ~/tempo_jax.tar.gz
    python3 -m venv ~/venv && . ~/venv/bin/activate
    pip install -q --upgrade pip && pip install -q -e \"\$HOME/${REMOTE_DIR}[tpu]\"
    python -c 'import jax; print(jax.process_index(), jax.local_device_count(), jax.devices()[0].device_kind)'"
}

plan() {  # runs here (on a CPU host with libtpu), not on the slice
  (cd "$ROOT" && tempo-jax plan --config "$CONFIG" --topology "$ACCELERATOR_TYPE")
}

start() {  # $1: extra flags for tempo-jax train (e.g. --resume)
  need_bucket
  local resume=${1:-}
  # The same command on every worker; JAX finds the coordinator on a pod slice by itself
  # (tempo_jax.parallel.distributed.init_distributed). nohup: the run outlives this SSH session.
  on_all "set -e
    cd ~/$REMOTE_DIR && . ~/venv/bin/activate
    nohup env TEMPO_JAX_DISTRIBUTED=auto tempo-jax train --config $CONFIG --config.run_dir=$RUN_DIR \
      $OVERRIDES $resume > $LOG 2>&1 < /dev/null &
    echo \$! > $PIDFILE
    echo \"worker started: \$(hostname) pid \$(cat $PIDFILE)\""
  logs
}

logs() {
  on_worker0 "tail -n 100 -F $LOG"
}

evaluate() {  # the run's latest checkpoint, parameters sharded over the whole slice; results in the bucket
  need_bucket
  on_all "set -e
    cd ~/$REMOTE_DIR && . ~/venv/bin/activate
    TEMPO_JAX_DISTRIBUTED=auto tempo-jax eval --config $CONFIG --checkpoint $RUN_DIR --mesh auto \
      --out $RUN_DIR/eval_final ${EVAL_ARGS:---n 16} $OVERRIDES"
}

plot() {
  need_bucket
  on_worker0 "cd ~/$REMOTE_DIR && . ~/venv/bin/activate && tempo-jax plot $RUN_DIR"
}

stop() {
  on_all "if [ -f $PIDFILE ]; then kill -TERM \$(cat $PIDFILE) || true; fi"
}

delete() {
  gcloud compute tpus tpu-vm delete "$TPU_NAME" "${GCLOUD_ARGS[@]}" --quiet
}

case "${1:-}" in
  create) create ;;
  setup) setup ;;
  plan) plan ;;
  train) start "" ;;
  resume) start "--resume" ;;
  logs) logs ;;
  stop) stop ;;
  eval) evaluate ;;
  plot) plot ;;
  delete) delete ;;
  *)
    sed -n '2,26p' "$0"
    exit 2
    ;;
esac
