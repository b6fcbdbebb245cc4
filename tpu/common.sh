#!/usr/bin/env bash
# Shared settings and helpers of the TPU scripts (sourced by each of them, not run on its own).
# Every setting can be overridden in the environment:
#   TPU_NAME      name of the TPU VM, and of its queued resource (default: r1jax-$USER)
#   TPU_ZONE      GCP zone (default: us-central2-b, where v4 slices are)
#   TPU_TYPE      accelerator type: v4-32, v5litepod-64 (v5e-64 is accepted and renamed),
#                 v5p-32, v6e-64 ... (default: v4-32)
#   TPU_VERSION   runtime version (default: the one of TPU_TYPE's generation, from the case below)
#   TPU_PROJECT   GCP project (default: gcloud's configured one)
#   TPU_SPOT      1: a spot slice (cheaper, can be preempted at any time); default 0
#   TPU_QUEUED    1: create the slice through a queued resource (waits for capacity); default 0
#   GCS_BUCKET    bucket mounted with gcsfuse at GCS_MOUNT on every worker (holds the workdir)
#   GCS_MOUNT     mount point of GCS_BUCKET on every worker (default: /mnt/$GCS_BUCKET)
#   R1JAX_PYTHON  Python version of the workers' virtual environment (default: 3.12; the
#                 python3 of the TPU images' Ubuntu 22.04 is 3.10, older than r1jax needs)
#   R1JAX_REPO    git URL that every worker clones r1jax from
#   R1JAX_REF     git ref every worker checks out (default: main)
#   DRY_RUN       1: print every gcloud command line instead of running it (same as --dry-run)
set -euo pipefail

DRY_RUN="${DRY_RUN:-0}"
TPU_NAME="${TPU_NAME:-r1jax-${USER:-user}}"
TPU_ZONE="${TPU_ZONE:-us-central2-b}"
TPU_TYPE="${TPU_TYPE:-v4-32}"
TPU_TYPE="${TPU_TYPE/#v5e-/v5litepod-}" # gcloud's name for v5e slices
case "$TPU_TYPE" in
  v4-*) default_version=tpu-ubuntu2204-base ;;
  v5litepod-*) default_version=v2-alpha-tpuv5-lite ;;
  v5p-*) default_version=v2-alpha-tpuv5 ;;
  v6e-*) default_version=v2-alpha-tpuv6e ;;
  *) default_version="" ;;
esac
TPU_VERSION="${TPU_VERSION:-$default_version}"
TPU_SPOT="${TPU_SPOT:-0}"
TPU_QUEUED="${TPU_QUEUED:-0}"
GCS_BUCKET="${GCS_BUCKET:-}"
GCS_MOUNT="${GCS_MOUNT:-/mnt/${GCS_BUCKET:-bucket}}"
R1JAX_REPO="${R1JAX_REPO:-https://github.com/r1jax/r1jax.git}"
R1JAX_REF="${R1JAX_REF:-main}"
R1JAX_PYTHON="${R1JAX_PYTHON:-3.12}"
# Files on every worker, relative to its home directory (used by the scripts that source this).
# shellcheck disable=SC2034
TRAIN_LOG=r1jax-train.log
# shellcheck disable=SC2034
TRAIN_PID=r1jax-train.pid
# shellcheck disable=SC2034
VENV_PYTHON=r1jax-venv/bin/python

PROJECT_FLAG=()
if [[ -n "${TPU_PROJECT:-}" ]]; then PROJECT_FLAG=(--project "$TPU_PROJECT"); fi

die() {
  echo "$(basename "$0"): $*" >&2
  exit 2
}

# Takes --dry-run off the script's arguments: `parse_dry_run "$@"; set -- "${ARGS[@]}"`.
ARGS=()
parse_dry_run() {
  local arg
  for arg in "$@"; do
    if [[ "$arg" == --dry-run ]]; then DRY_RUN=1; else ARGS+=("$arg"); fi
  done
}

# One argument as a shell word: as it is when it needs no quoting, else in single quotes.
shell_word() {
  local word="$1" quote="'"
  if [[ "$word" =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then
    printf '%s' "$word"
  else
    printf "'%s'" "${word//$quote/$quote\\$quote$quote}"
  fi
}

# Runs gcloud, or with DRY_RUN=1 prints its command line (one line, words quoted as a shell
# would need them) and runs nothing.
gcloud_() {
  if [[ "$DRY_RUN" == 1 ]]; then
    local line="gcloud" arg
    for arg in "$@"; do line+=" $(shell_word "$arg")"; done
    echo "$line"
  else
    gcloud "$@"
  fi
}

# The given shell lines as one line: joined by "; ", or by " " after a line that ends in "&".
join_lines() {
  local joined="" line
  for line in "$@"; do
    if [[ -z "$joined" ]]; then
      joined="$line"
    elif [[ "$joined" == *"&" ]]; then
      joined+=" $line"
    else
      joined+="; $line"
    fi
  done
  echo "$joined"
}

# Runs one shell command line on the given worker(s) ("all" or an index), in parallel.
on_workers() {
  gcloud_ compute tpus tpu-vm ssh "$TPU_NAME" --zone "$TPU_ZONE" "${PROJECT_FLAG[@]}" \
    --worker="$1" --command "$2"
}

on_all_workers() {
  on_workers all "$1"
}

# The shell line that mounts GCS_BUCKET at GCS_MOUNT on a worker unless it is mounted already.
# No metadata cache (--metadata-cache-ttl-secs=0): every worker writes checkpoint shards into
# the same directories and process 0 must see the others' files at once; orbax finishes a
# checkpoint by renaming its temporary directory, which gcsfuse does object by object on a flat
# bucket up to --rename-dir-limit objects (a bucket with hierarchical namespace renames natively).
mount_line() {
  local bucket mount
  bucket="$(shell_word "$GCS_BUCKET")"
  mount="$(shell_word "$GCS_MOUNT")"
  echo "if ! mountpoint -q $mount; then sudo mkdir -p $mount && sudo chown \"\$USER\" $mount" \
    "&& gcsfuse --implicit-dirs --rename-dir-limit=1000000 --metadata-cache-ttl-secs=0" \
    "$bucket $mount; fi"
}
