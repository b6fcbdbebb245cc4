#!/usr/bin/env bash
# Create the TPU slice (one host or a multi-host pod slice).
# Usage: [TPU_TYPE=v5litepod-64] [TPU_SPOT=1] [TPU_QUEUED=1] bash tpu/create.sh [--dry-run]
# With TPU_QUEUED=1 the slice is requested as a queued resource and the script waits until it is
# ACTIVE (capacity can take minutes to hours); without it `tpu-vm create` fails at once when the
# zone has no capacity. TPU_SPOT=1 asks for a spot slice in either case.
set -euo pipefail
# shellcheck source=tpu/common.sh
source "$(dirname "$0")/common.sh"
parse_dry_run "$@"
set -- "${ARGS[@]}"
if [[ $# -ne 0 ]]; then die "usage: bash tpu/create.sh [--dry-run]"; fi
if [[ -z "$TPU_VERSION" ]]; then die "no default runtime for TPU_TYPE=$TPU_TYPE: set TPU_VERSION"; fi

SPOT_FLAG=()
if [[ "$TPU_SPOT" == 1 ]]; then SPOT_FLAG=(--spot); fi

if [[ "$TPU_QUEUED" == 1 ]]; then
  gcloud_ compute tpus queued-resources create "$TPU_NAME" --node-id "$TPU_NAME" \
    --zone "$TPU_ZONE" "${PROJECT_FLAG[@]}" --accelerator-type "$TPU_TYPE" \
    --runtime-version "$TPU_VERSION" "${SPOT_FLAG[@]}"
  describe=(compute tpus queued-resources describe "$TPU_NAME" --zone "$TPU_ZONE"
    "${PROJECT_FLAG[@]}" --format 'value(state.state)')
  if [[ "$DRY_RUN" == 1 ]]; then
    gcloud_ "${describe[@]}" # polled every 60 s until ACTIVE
  else
    while state="$(gcloud "${describe[@]}")" && [[ "$state" != ACTIVE ]]; do
      case "$state" in
        FAILED | SUSPENDED) die "queued resource $TPU_NAME is $state" ;;
      esac
      echo "queued resource $TPU_NAME: $state; waiting" >&2
      sleep 60
    done
  fi
else
  gcloud_ compute tpus tpu-vm create "$TPU_NAME" --zone "$TPU_ZONE" "${PROJECT_FLAG[@]}" \
    --accelerator-type "$TPU_TYPE" --version "$TPU_VERSION" "${SPOT_FLAG[@]}"
fi
echo "created $TPU_NAME ($TPU_TYPE, $TPU_VERSION) in $TPU_ZONE" >&2
