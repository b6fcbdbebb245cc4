#!/usr/bin/env bash
# Delete the TPU VM. Usage: bash tpu/delete.sh
source "$(dirname "$0")/common.sh"
gcloud compute tpus tpu-vm delete "$TPU_NAME" --zone "$TPU_ZONE" "${PROJECT_FLAG[@]}" --quiet
