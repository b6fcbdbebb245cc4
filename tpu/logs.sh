#!/usr/bin/env bash
# Show the tail of the training log of every worker. Usage: bash tpu/logs.sh [LINES]
source "$(dirname "$0")/common.sh"
lines="${1:-40}"
on_all_workers "echo == \$(hostname); tail -n $lines \$HOME/r1jax-train.log"
