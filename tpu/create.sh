#!/usr/bin/env bash
# Create a TPU VM (single host or pod slice). Usage: TPU_TYPE=v4-16 bash tpu/create.sh
source "$(dirname "$0")/common.sh"
gcloud compute tpus tpu-vm create "$TPU_NAME" --zone "$TPU_ZONE" "${PROJECT_FLAG[@]}" \
  --accelerator-type "$TPU_TYPE" --version "$TPU_VERSION"
echo "created $TPU_NAME ($TPU_TYPE) in $TPU_ZONE"
