#!/usr/bin/env bash
# Send SIGTERM to the training process on every worker (the one tpu/run.sh started): r1jax
# saves a checkpoint and exits cleanly; tpu/run.sh with the same WORKDIR resumes from it.
# Usage: bash tpu/stop.sh [--dry-run]
set -euo pipefail
# shellcheck source=tpu/common.sh
source "$(dirname "$0")/common.sh"
parse_dry_run "$@"
set -- "${ARGS[@]}"
if [[ $# -ne 0 ]]; then die "usage: bash tpu/stop.sh [--dry-run]"; fi
on_all_workers "if [ -f \"\$HOME/$TRAIN_PID\" ]; then kill -TERM \"\$(cat \"\$HOME/$TRAIN_PID\")\" 2> /dev/null || true; fi"
