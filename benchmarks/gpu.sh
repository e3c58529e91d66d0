#!/usr/bin/env bash
# The prepared GPU run of every benchmark: prints the GPU's name, then one JSON line per stage.
#   train: kcbert-base shape with random weights, seq 300, batch 32, bf16-mixed, 10 warm-up + 60
#   timed steps, qaframe and the Trainer peer, then a second line with qaframe's --compile; each
#   side then profiles 5 more steps (how busy the GPU is, kernels and host synchronizations per step);
#   predict: kcbert-base shape on the GPU; SDPA attention with cuDNN against memory-efficient;
#   compiled training again with the progress bar reading the loss every step; featurize and
#   decode (CPU work, on the GPU machine's cores) last.
#   Run from anywhere: `bash benchmarks/gpu.sh`.
# `bash benchmarks/gpu.sh --smoke`: the CPU fallback with tiny shapes and a handful of steps, to
#   check that the script and every benchmark run at all (on a machine without a GPU).
# Where qaframe is not installed (the GPU machine's image has its dependencies but not qaframe),
#   it is installed in editable mode first, offline: dependencies the machine lacks come from
#   wheels in .whl/ when they are there, else it is installed without them. qaframe needs numpy
#   >= 2.0; the decode time measured on that image (0.060 s) matches numpy 1.26's, so carry a
#   numpy wheel for its Python in .whl/ (or install a built qaframe wheel with --find-links .whl).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
command -v "$python" >/dev/null || python=python
export PYTHONUNBUFFERED=1
if ! "$python" -c "import qaframe_plugins" 2>/dev/null; then
  "$python" -m pip install -q --no-index --find-links .whl --no-build-isolation -e . >&2 \
    || "$python" -m pip install -q --no-index --no-deps --no-build-isolation -e . >&2
fi
"$python" -c "import torch; print('device:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu (no GPU)')"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
cd benchmarks
failed=0
stage() {  # one benchmark; a failure is reported and the others still run
  "$python" "$@" || { echo "FAILED: $*" >&2; failed=1; }
}
if [ "${1:-}" = "--smoke" ]; then
  stage featurize.py --examples 300 --repeats 1
  stage decode.py --examples 300 --repeats 1
  stage train.py --shape tiny --batch-size 8 --warmup 1 --steps 2 --examples 100 --progress-every 1 --profile-steps 1
  stage train.py --shape tiny --batch-size 4 --warmup 1 --steps 1 --examples 60 --precision bf16-mixed --compile-too
  stage predict.py --examples 10
  stage attention.py
else
  stage train.py --device cuda --shape base --precision bf16-mixed --batch-size 32 --warmup 10 --steps 60 --compile-too \
    --profile-steps 5
  stage predict.py --device cuda --shape base --examples 1000
  stage attention.py
  # the progress bar reading the loss (a GPU synchronization) at every step, against every 10 (the default)
  stage train.py --device cuda --shape base --precision bf16-mixed --batch-size 32 --warmup 10 --steps 60 --compile \
    --progress-every 1 --profile-steps 5
  stage featurize.py --repeats 2
  stage decode.py --repeats 2
fi
exit $failed
