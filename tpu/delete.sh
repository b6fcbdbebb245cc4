#!/usr/bin/env bash
# Delete the TPU slice (with TPU_QUEUED=1: its queued resource and the slice in it).
# The bucket and the run in it stay. Usage: bash tpu/delete.sh [--dry-run]
set -euo pipefail
# shellcheck source=tpu/common.sh
source "$(dirname "$0")/common.sh"
parse_dry_run "$@"
set -- "${ARGS[@]}"
if [[ $# -ne 0 ]]; then die "usage: bash tpu/delete.sh [--dry-run]"; fi
if [[ "$TPU_QUEUED" == 1 ]]; then
  gcloud_ compute tpus queued-resources delete "$TPU_NAME" --zone "$TPU_ZONE" \
    "${PROJECT_FLAG[@]}" --force --quiet
else
  gcloud_ compute tpus tpu-vm delete "$TPU_NAME" --zone "$TPU_ZONE" "${PROJECT_FLAG[@]}" --quiet
fi
