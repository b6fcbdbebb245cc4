#!/usr/bin/env bash
# Launch one training run over the whole pod: the same command on every worker (multi-host SPMD).
# Each worker joins the job with jax.distributed.initialize() (--config.distributed.auto=true:
# the TPU runtime tells every worker the coordinator, the process count and its own index), the
# mesh spans every chip of the pod (mesh.data=-1 by default: pure data parallelism; pass e.g.
# --config.mesh.fsdp=8 to shard params), each worker reads its own share of every batch, and
# process 0 writes metrics and the export. The workdir must be a directory every worker sees at
# the same path (a gcsfuse mount of a bucket, NFS/Filestore): all workers write one set of
# checkpoints and resume from it. (A gs:// URL does not work: metrics, the tokenizer and the
# summary are written with plain file I/O.)
# Evaluation inside a multi-host run is not supported: keep eval.num_problems=0 (set below) and
# evaluate the export with python -m r1jax.eval.
# Usage: bash tpu/run.sh experiments/default.py /mnt/BUCKET/runs/NAME [--config.key=value ...]
source "$(dirname "$0")/common.sh"
if [[ $# -lt 2 ]]; then
  echo "usage: bash tpu/run.sh EXPERIMENT.py[:preset] WORKDIR [--config.key=value ...]" >&2
  exit 2
fi
config="$1"; workdir="$2"; shift 2
extra="$(printf ' %q' "$@")"
on_all_workers "cd r1jax && nohup python3 -m r1jax.train --config '$config' --workdir '$workdir' \
  --config.distributed.auto=true --config.eval.num_problems=0 --config.logging.progress_bar=false \
  $extra > \$HOME/r1jax-train.log 2>&1 &
  echo started on \$(hostname)"
