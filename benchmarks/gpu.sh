#!/usr/bin/env bash
# The prepared GPU run of every benchmark: prints the GPU's name, then one JSON line per stage.
#   train: kcbert-base shape with random weights, seq 300, batch 32, bf16-mixed, 10 warm-up + 60
#   timed steps, qaframe and the Trainer peer, then a second line with qaframe's --compile; each
#   side then profiles 5 more steps (how busy the GPU is, kernels and host synchronizations per step);
#   then qaframe with --compile-mode reduce-overhead (CUDA graphs); decode and featurize (CPU work,
#   on the GPU machine's cores); predict: kcbert-base shape on the GPU; compiled training again with
#   the progress bar reading the loss every step; SDPA attention with cuDNN against memory-efficient.
#   Each stage has a time limit, so one that hangs cannot take the others' time.
#   Run from anywhere: `bash benchmarks/gpu.sh`.
# `bash benchmarks/gpu.sh --smoke`: the CPU fallback with tiny shapes and a handful of steps, to
#   check that the script and every benchmark run at all (on a machine without a GPU).
# Where qaframe is not installed (the GPU machine's image has its dependencies but not qaframe),
#   it is installed in editable mode first, offline, without dependencies.
# decode and featurize lean on numpy >= 2.0 (np.partition is SIMD-vectorized from 2.0; the decode
#   time measured on that image, 0.060 s, matches numpy 1.26's). Where the machine's numpy is
#   older, a numpy wheel carried in .whl/ is unpacked into .whl/numpy2 and those two stages import
#   it first; the GPU stages keep the machine's own numpy, which its other packages were built for.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
command -v "$python" >/dev/null || python=python
export PYTHONUNBUFFERED=1
if ! "$python" -c "import qaframe_plugins" 2>/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-build-isolation -e . >&2
fi
numpy2=
if ! "$python" -c "import numpy, sys; sys.exit(int(numpy.__version__.split('.')[0]) < 2)"; then
  for wheel in .whl/numpy-*.whl; do
    if [ -f "$wheel" ] && "$python" -m pip install -q --no-index --no-deps --upgrade --target .whl/numpy2 "$wheel" >&2; then
      numpy2=$PWD/.whl/numpy2
      break
    fi
  done
  [ -n "$numpy2" ] || echo "numpy is older than 2.0 and .whl/ holds no numpy wheel: decode and featurize will be slow" >&2
fi
"$python" -c "import torch; print('device:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu (no GPU)')"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
cd benchmarks
failed=0
stage() {  # stage SECONDS SCRIPT ARGS...: one benchmark, stopped after SECONDS; a failure is reported, the others still run
  local limit=$1
  shift
  timeout "$limit" "$python" "$@" || { echo "FAILED ($?): $*" >&2; failed=1; }
}
cpu_stage() {  # a stage of CPU work, with the carried numpy first where there is one
  if [ -n "$numpy2" ]; then PYTHONPATH="$numpy2" stage "$@"; else stage "$@"; fi
}
if [ "${1:-}" = "--smoke" ]; then
  cpu_stage 300 featurize.py --examples 300 --repeats 1
  cpu_stage 300 decode.py --examples 300 --repeats 1
  stage 300 train.py --shape tiny --batch-size 8 --warmup 1 --steps 2 --examples 100 --progress-every 1 --profile-steps 1
  stage 300 train.py --shape tiny --batch-size 4 --warmup 1 --steps 1 --examples 60 --precision bf16-mixed --compile-too
  stage 300 train.py --shape tiny --batch-size 4 --warmup 1 --steps 1 --examples 60 --compile --compile-mode reduce-overhead \
    --pad-to-multiple-of 64
  stage 300 predict.py --examples 10
  stage 300 attention.py
else
  # in order of what is least known; each line prints as soon as it is measured
  base=(--device cuda --shape base --precision bf16-mixed --batch-size 32 --warmup 10 --steps 60 --profile-steps 5)
  stage 300 train.py "${base[@]}" --compile-too
  # CUDA graphs: one graph recorded per batch shape, a step's kernels replayed at once; widths in
  # steps of 64 (at most 5 shapes), and warm-up steps enough for each shape to be recorded
  stage 240 train.py "${base[@]}" --compile --compile-mode reduce-overhead --pad-to-multiple-of 64 --warmup 30
  cpu_stage 60 decode.py --repeats 2
  cpu_stage 90 featurize.py --repeats 2
  stage 120 predict.py --device cuda --shape base --examples 1000
  # the progress bar reading the loss (a GPU synchronization) at every step, against every 10 (the default)
  stage 200 train.py "${base[@]}" --compile --progress-every 1
  stage 60 attention.py
fi
exit $failed
