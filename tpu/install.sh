#!/usr/bin/env bash
# Install r1jax with its `tpu` extra (jax[tpu]) on every worker: clone R1JAX_REPO into ~/r1jax
# (or update the clone) at R1JAX_REF, install it editable into the virtual environment
# ~/r1jax-venv (Python R1JAX_PYTHON, made with uv, which the script installs into ~/.local/bin),
# print what JAX sees (process index, global and local device counts). With GCS_BUCKET
# set, also install gcsfuse and mount the bucket at GCS_MOUNT.
# Usage: [GCS_BUCKET=my-bucket] bash tpu/install.sh [--dry-run]
set -euo pipefail
# shellcheck source=tpu/common.sh
source "$(dirname "$0")/common.sh"
parse_dry_run "$@"
set -- "${ARGS[@]}"
if [[ $# -ne 0 ]]; then die "usage: bash tpu/install.sh [--dry-run]"; fi
repo="$(shell_word "$R1JAX_REPO")"
ref="$(shell_word "$R1JAX_REF")"
python_version="$(shell_word "$R1JAX_PYTHON")"
steps=(
  "set -e"
  "if [ ! -x \"\$HOME/.local/bin/uv\" ]; then curl -LsSf https://astral.sh/uv/install.sh | sh; fi"
  "if [ ! -d r1jax/.git ]; then git clone -q $repo r1jax; fi"
  "git -C r1jax fetch -q origin $ref"
  "git -C r1jax checkout -q --detach FETCH_HEAD"
  "if [ ! -x \"\$HOME/$VENV_PYTHON\" ]; then \"\$HOME/.local/bin/uv\" venv -q --python $python_version \"\$HOME/r1jax-venv\"; fi"
  "\"\$HOME/.local/bin/uv\" pip install -q --python \"\$HOME/$VENV_PYTHON\" -e \"./r1jax[tpu]\""
)
if [[ -n "$GCS_BUCKET" ]]; then
  # gcsfuse from Google's apt repository (documented at
  # cloud.google.com/storage/docs/cloud-storage-fuse/install).
  steps+=(
    "if ! command -v gcsfuse > /dev/null; then echo \"deb [signed-by=/usr/share/keyrings/cloud.google.asc] https://packages.cloud.google.com/apt gcsfuse-\$(lsb_release -c -s) main\" | sudo tee /etc/apt/sources.list.d/gcsfuse.list > /dev/null && curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo tee /usr/share/keyrings/cloud.google.asc > /dev/null && sudo apt-get update -q && sudo apt-get install -y -q gcsfuse; fi"
    "$(mount_line)"
  )
fi
steps+=("\"\$HOME/$VENV_PYTHON\" -c \"import jax; print(jax.process_index(), jax.device_count(), jax.local_device_count())\"")
on_all_workers "$(join_lines "${steps[@]}")"
