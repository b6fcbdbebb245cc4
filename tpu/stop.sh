#!/usr/bin/env bash
# Send SIGTERM to the training processes: r1jax saves a checkpoint and exits cleanly.
source "$(dirname "$0")/common.sh"
on_all_workers "pkill -TERM -f 'r1jax.train' || true"
