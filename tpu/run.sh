#!/usr/bin/env bash
# Launch the same training command on every worker of the pod (multi-host SPMD launch).
# Note: r1jax.train's loop is single-process today (see README, "What has not been run"); the
# mesh, sharded params and data shards are multi-host ready and tested with two CPU processes.
# Use a gs:// bucket as the workdir so every worker sees the same checkpoints.
# Usage: bash tpu/run.sh experiments/default.py gs://BUCKET/runs/NAME [--config.key=value ...]
source "$(dirname "$0")/common.sh"
if [[ $# -lt 2 ]]; then
  echo "usage: bash tpu/run.sh EXPERIMENT.py[:preset] WORKDIR [--config.key=value ...]" >&2
  exit 2
fi
config="$1"; workdir="$2"; shift 2
extra="$(printf ' %q' "$@")"
on_all_workers "cd r1jax && nohup python3 -m r1jax.train --config '$config' --workdir '$workdir' $extra \
  > \$HOME/r1jax-train.log 2>&1 &
  echo started on \$(hostname)"
