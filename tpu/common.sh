#!/usr/bin/env bash
# Shared settings for the TPU pod scripts. Override any of them in the environment.
#   TPU_NAME     name of the TPU VM (default: r1jax-$USER)
#   TPU_ZONE     GCP zone (default: us-central2-b)
#   TPU_TYPE     accelerator type (default: v4-16, i.e. 2 hosts)
#   TPU_VERSION  runtime software version (default: tpu-ubuntu2204-base)
#   TPU_PROJECT  GCP project (default: the gcloud default)
#   R1JAX_REPO   git URL or local path that every worker installs r1jax from
#   R1JAX_REF    git ref to check out (default: main)
set -euo pipefail
TPU_NAME="${TPU_NAME:-r1jax-${USER:-user}}"
TPU_ZONE="${TPU_ZONE:-us-central2-b}"
TPU_TYPE="${TPU_TYPE:-v4-16}"
TPU_VERSION="${TPU_VERSION:-tpu-ubuntu2204-base}"
R1JAX_REPO="${R1JAX_REPO:-https://github.com/r1jax/r1jax.git}"
R1JAX_REF="${R1JAX_REF:-main}"
PROJECT_FLAG=()
if [[ -n "${TPU_PROJECT:-}" ]]; then PROJECT_FLAG=(--project "$TPU_PROJECT"); fi

# Run one shell command on every worker of the pod, in parallel.
on_all_workers() {
  gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$TPU_ZONE" "${PROJECT_FLAG[@]}" \
    --worker=all --command "$1"
}
