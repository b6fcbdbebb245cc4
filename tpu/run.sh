#!/usr/bin/env bash
# Launch one training run over the whole slice: the same `python -m r1jax.train` command on every
# worker (multi-host SPMD), in the background, its output in ~/r1jax-train.log on each worker.
# Each worker joins the job with jax.distributed.initialize() (--config.distributed.auto=true:
# the TPU runtime tells every worker the coordinator, the process count and its own index); the
# mesh spans every chip of the slice; each worker reads its own share of every batch; every
# worker evaluates (the same figures on all of them) and process 0 writes metrics, the summary
# and the export.
# WORKDIR must be one directory that every worker sees at the same path: with GCS_BUCKET set, a
# path under GCS_MOUNT (the bucket, mounted again here if the mount is gone). A gs:// URL does not
# work (r1jax writes metrics, the tokenizer and the summary with plain file I/O), nor does a
# directory local to each worker (orbax writes one checkpoint from all workers and process 0
# finishes it, reading the others' files). Rerunning the same command resumes from the newest
# checkpoint in WORKDIR.
# Usage: bash tpu/run.sh [--dry-run] EXPERIMENT.py[:preset] WORKDIR [--config.key=value ...]
# EXPERIMENT is a path inside the r1jax checkout on the workers (e.g. experiments/X.py).
set -euo pipefail
# shellcheck source=tpu/common.sh
source "$(dirname "$0")/common.sh"
parse_dry_run "$@"
set -- "${ARGS[@]}"
if [[ $# -lt 2 ]]; then
  die "usage: bash tpu/run.sh [--dry-run] EXPERIMENT.py[:preset] WORKDIR [--config.key=value ...]"
fi
config="$1"
workdir="$2"
shift 2
if [[ "$workdir" == gs://* ]]; then
  die "WORKDIR must be a mounted path, not $workdir: set GCS_BUCKET and use $GCS_MOUNT/..."
fi
train=("$VENV_PYTHON" -m r1jax.train --config "$config" --workdir "$workdir"
  --config.distributed.auto=true --config.logging.progress_bar=false "$@")
train_line=""
for arg in "${train[@]}"; do train_line+="$(shell_word "$arg") "; done
steps=("set -e")
if [[ -n "$GCS_BUCKET" ]]; then steps+=("$(mount_line)"); fi
steps+=(
  "if [ -f \"\$HOME/$TRAIN_PID\" ] && kill -0 \"\$(cat \"\$HOME/$TRAIN_PID\")\" 2> /dev/null; then echo \"\$(hostname): r1jax.train is already running\" >&2; exit 1; fi"
  "cd r1jax"
  "nohup \"\$HOME\"/${train_line}>> \"\$HOME/$TRAIN_LOG\" 2>&1 < /dev/null &"
  "echo \$! > \"\$HOME/$TRAIN_PID\""
  "echo \"started on \$(hostname)\""
)
on_all_workers "$(join_lines "${steps[@]}")"
