#!/usr/bin/env bash
# Run one shell command line on every worker (or on one: --worker=N), e.g. to copy the model
# weights onto each of them. Usage: bash tpu/ssh.sh [--dry-run] [--worker=N] 'COMMAND'
set -euo pipefail
# shellcheck source=tpu/common.sh
source "$(dirname "$0")/common.sh"
parse_dry_run "$@"
set -- "${ARGS[@]}"
worker=all
if [[ "${1:-}" == --worker=* ]]; then
  worker="${1#--worker=}"
  shift
fi
if [[ $# -ne 1 ]]; then die "usage: bash tpu/ssh.sh [--dry-run] [--worker=N] 'COMMAND'"; fi
on_workers "$worker" "$1"
