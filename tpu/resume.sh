#!/usr/bin/env bash
# Continue a run after its slice was preempted (a spot slice, or a queued resource that went to
# SUSPENDED): delete what is left of the slice, create it again, install, mount the bucket and
# launch the same run, which resumes from the newest checkpoint in WORKDIR. Use the settings
# (TPU_*, GCS_BUCKET) and the arguments of the first launch. When the slice is still up and only
# the training process ended, tpu/run.sh alone does the last step.
# Usage: bash tpu/resume.sh [--dry-run] EXPERIMENT.py[:preset] WORKDIR [--config.key=value ...]
set -euo pipefail
# shellcheck source=tpu/common.sh
source "$(dirname "$0")/common.sh"
parse_dry_run "$@"
set -- "${ARGS[@]}"
if [[ $# -lt 2 ]]; then
  die "usage: bash tpu/resume.sh [--dry-run] EXPERIMENT.py[:preset] WORKDIR [--config.key=value ...]"
fi
here="$(dirname "$0")"
export DRY_RUN
bash "$here/delete.sh" || echo "resume.sh: nothing to delete, creating $TPU_NAME" >&2
bash "$here/create.sh"
bash "$here/install.sh"
bash "$here/run.sh" "$@"
