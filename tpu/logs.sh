#!/usr/bin/env bash
# Follow worker 0's training log (process 0 prints the progress lines and evaluations; Ctrl-C
# stops following, not training). With --all, print the last LINES lines of every worker's log
# once instead (the other workers print their errors only).
# Usage: bash tpu/logs.sh [--dry-run] [--all] [LINES]   (LINES: default 100)
set -euo pipefail
# shellcheck source=tpu/common.sh
source "$(dirname "$0")/common.sh"
parse_dry_run "$@"
set -- "${ARGS[@]}"
all=0
if [[ "${1:-}" == --all ]]; then
  all=1
  shift
fi
lines="${1:-100}"
if [[ $# -gt 1 || ! "$lines" =~ ^[0-9]+$ ]]; then
  die "usage: bash tpu/logs.sh [--dry-run] [--all] [LINES]"
fi
if [[ "$all" == 1 ]]; then
  on_all_workers "echo \"== \$(hostname)\"; tail -n $lines \"\$HOME/$TRAIN_LOG\""
else
  on_workers 0 "tail -n $lines -F \"\$HOME/$TRAIN_LOG\""
fi
