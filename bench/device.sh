#!/usr/bin/env bash
# The sampler and step benchmarks on a lent accelerator, in one run of under 5 minutes
# (the steps' time limits add up to 290 s).
#
#   bench/device.sh [--dry-run]      (from the repository root; results go to $OUT, else /tmp)
#
# Before the run, build r1jax's wheel beside this script (it travels with the working tree):
#   pip wheel --no-deps --no-build-isolation -w bench/wheels .
# The machine has jax with CUDA, flax, optax, orbax, torch and transformers and no network, so
# the wheel is installed with --no-deps --no-index; without a wheel the checkout is imported.
#
# Steps (each under `timeout`, each writing one JSON line to $OUT/<step>.json and its printout
# to $OUT/device.log):
#   1. longtail: `bench sample --workload longtail --mode both` on small (static and
#      continuous, 32 prompts x 8, T = 1024, 64 slots)
#   2. qwen05b:  `bench sample --model qwen05b --dtype bfloat16 --vs-transformers`
#   3. qwen15b:  the same on the Qwen2.5-1.5B shape
#   4. step:     `bench step --model small`
# --dry-run (or DEVICE=cpu) runs the same steps on this CPU with the tiny model and a few
# tokens, so a test can check the script end to end. STEPS="longtail step" runs a subset.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY_RUN=0
if [[ "${1:-}" == "--dry-run" || "${DEVICE:-}" == "cpu" ]]; then DRY_RUN=1; fi
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
LOG="$OUT/device.log"
PYTHON=${PYTHON:-python}

if [[ $DRY_RUN == 0 ]] && compgen -G "bench/wheels/r1jax-*.whl" >/dev/null; then
  "$PYTHON" -m pip install --quiet --no-deps --no-index --force-reinstall bench/wheels/r1jax-*.whl
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

if [[ $DRY_RUN == 1 ]]; then
  export JAX_PLATFORMS=cpu
  LONGTAIL=(--model tiny --prompts 2 --samples 2 --new-tokens 16 --prompt-length 8 --slots 4)
  FIXED=(--model tiny --prompts 1 --samples 2 --new-tokens 4 --prompt-length 4 --repeats 1
         --peak-size 128 --bandwidth-mib 8)
  STEP=(--model tiny --prompts 1 --samples 2 --new-tokens 4 --prompt-length 4 --repeats 1
        --workers 1)
  LIMITS=(120 120 120 120)
else
  LONGTAIL=(--model small --slots 64)
  FIXED=(--repeats 3)
  STEP=(--model small)
  LIMITS=(100 60 80 50)  # 290 s in all
fi

STEPS=${STEPS:-longtail qwen05b qwen15b step}
status=0
step() {  # step NAME LIMIT_SECONDS ARGS...
  local name=$1 limit=$2
  shift 2
  [[ " $STEPS " == *" $name "* ]] || return 0
  echo "== $name: python -m r1jax.bench $*" | tee -a "$LOG"
  local start=$SECONDS
  if timeout "$limit" "$PYTHON" -m r1jax.bench "$@" --json >"$OUT/$name.json" 2>>"$LOG"; then
    echo "   ok in $((SECONDS - start)) s" | tee -a "$LOG"
  else
    echo "   FAILED (exit $?) after $((SECONDS - start)) s" | tee -a "$LOG"
    status=1
  fi
  tail -c 2000 "$OUT/$name.json" >>"$LOG"
}

"$PYTHON" -c "import jax; print('devices:', jax.devices())" | tee -a "$LOG"
step longtail "${LIMITS[0]}" sample --workload longtail --mode both "${LONGTAIL[@]}"
if [[ $DRY_RUN == 1 ]]; then
  step qwen05b "${LIMITS[1]}" sample "${FIXED[@]}" --dtype bfloat16 --vs-transformers
  step qwen15b "${LIMITS[2]}" sample "${FIXED[@]}" --dtype bfloat16
else
  step qwen05b "${LIMITS[1]}" sample --model qwen05b --dtype bfloat16 --vs-transformers "${FIXED[@]}"
  step qwen15b "${LIMITS[2]}" sample --model qwen15b --dtype bfloat16 --vs-transformers "${FIXED[@]}"
fi
step step "${LIMITS[3]}" step "${STEP[@]}"
echo "results in $OUT" | tee -a "$LOG"
exit $status
