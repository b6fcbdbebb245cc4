#!/usr/bin/env bash
# Install r1jax with the TPU extra on every worker. Usage: bash tpu/install.sh
source "$(dirname "$0")/common.sh"
on_all_workers "set -e
  python3 -m pip install -q --upgrade pip
  if [ -d r1jax/.git ]; then git -C r1jax fetch -q origin && git -C r1jax checkout -q '$R1JAX_REF' && git -C r1jax pull -q --ff-only || true
  else git clone -q '$R1JAX_REPO' r1jax && git -C r1jax checkout -q '$R1JAX_REF'; fi
  python3 -m pip install -q -e 'r1jax[tpu]'
  python3 -c 'import jax; print(jax.process_index(), jax.device_count(), jax.local_device_count())'"
