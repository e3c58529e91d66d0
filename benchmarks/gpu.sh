#!/usr/bin/env bash
# The prepared GPU run of every benchmark: prints the GPU's name, then one JSON line per stage, most valuable first:
#   1. train: kcbert-base shape with random weights, seq 300, batch 32, bf16-mixed, 10 warm-up + 60 timed steps,
#      qaframe and the Trainer peer, then a second line with qaframe's --compile; each side then profiles 5 more
#      steps (how busy the GPU is, kernels and host synchronizations per step);
#   2. qaframe with --compile-mode reduce-overhead (CUDA graphs), 30 warm-up steps, profiled;
#   3. predict: kcbert-base shape on the GPU;
#   4. decode and featurize (CPU work, on the GPU machine's cores);
#   5. compiled training again with the progress bar reading the loss every step;
#   6. SDPA attention with cuDNN against memory-efficient.
#   Every train line generates the same --examples (3,100), so their losses compare: an epoch of about 130 batches
#   outlasts the 95 measured steps of the longest (Lightning validates and checkpoints at each epoch's end;
#   train.py fails, naming --examples, if a validation falls among the measured steps).
# Time: one deadline for the whole script, GPU_SH_SECONDS (default 540, under the device's 600 s per command; 3600
#   with --smoke). Each stage runs for at most min(its own limit, the time left) and is skipped, with a line saying
#   so, where under 30 s are left; a stage that fails or runs out of time is reported and the others still run.
#   Run from anywhere: `bash benchmarks/gpu.sh`.
# `bash benchmarks/gpu.sh --smoke`: the CPU fallback with tiny shapes and a handful of steps, to
#   check that the script and every benchmark run at all (on a machine without a GPU).
# Installing (the GPU machine's image has torch, transformers and Lightning, not qaframe, perhaps not pluggy or
#   accelerate; it has no network): pluggy and accelerate, where missing, from wheels in .whl/ (pip --no-index
#   --find-links .whl, which also takes their own missing needs, such as psutil, from there), else a warning;
#   qaframe, where missing, from .whl/qaframe-*.whl (--no-index --no-deps), else, as a last resort, this
#   checkout in editable mode (which needs setuptools and wheel). Then one line says whether the installed
#   qaframe's sources (sha256 of every .py of qaframe and qaframe_plugins) match this checkout's qaframe/ and
#   plugins/, so a stale wheel shows before any figure.
# decode and featurize lean on numpy >= 2.0 (np.partition is SIMD-vectorized from 2.0; the decode
#   time measured on that image, 0.060 s, matches numpy 1.26's). Where the machine's numpy is
#   older, a numpy wheel carried in .whl/ is unpacked into .whl/numpy2 and those two stages import
#   it first; the GPU stages keep the machine's own numpy, which its other packages were built for.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
smoke=
if [ "${1:-}" = "--smoke" ]; then smoke=1; fi
budget=${GPU_SH_SECONDS:-$([ -n "$smoke" ] && echo 3600 || echo 540)}
deadline=$((SECONDS + budget))
python=${PYTHON:-python3}
command -v "$python" >/dev/null || python=python
python=$(command -v "$python")  # an absolute path: the checks below run outside the checkout
export PYTHONUNBUFFERED=1

installed() {  # installed MODULE: whether MODULE is importable from the installed packages (not from this checkout)
  (cd / && "$python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)") 2>/dev/null
}
for package in pluggy accelerate; do  # qaframe needs pluggy; the Trainer peer of train.py needs accelerate
  installed "$package" && continue
  if compgen -G ".whl/$package-*.whl" >/dev/null &&
     "$python" -m pip install -q --no-index --find-links .whl "$package" >&2; then
    echo "installed $package from .whl/" >&2
  else
    echo "WARNING: $package is not installed and .whl/ holds no wheel of it that installs: $([ "$package" = pluggy ] \
      && echo "qaframe will not import" || echo "train.py's Trainer peer will fail (qaframe's figures still print)")" >&2
  fi
done
if ! installed qaframe || ! installed qaframe_plugins; then
  wheel=$(ls -t .whl/qaframe-*.whl 2>/dev/null | head -n 1 || true)  # the newest, where there are several
  if [ -n "$wheel" ] && "$python" -m pip install -q --no-index --no-deps "$wheel" >&2; then
    echo "installed qaframe from $wheel" >&2
  else
    echo "no qaframe wheel in .whl/ installed: installing this checkout in editable mode, offline (needs setuptools and wheel)" >&2
    "$python" -m pip install -q --no-index --no-deps --no-build-isolation -e . >&2 ||
      echo "WARNING: qaframe could not be installed; build a wheel here (pip wheel --no-deps --no-build-isolation . -w .whl) and carry .whl/" >&2
  fi
fi
# one line: do the installed qaframe's sources match this checkout's?
(cd / && "$python" - "$root" <<'EOF') || echo "qaframe sources: the check failed"
import hashlib
import importlib.util
import sys
from pathlib import Path

root = Path(sys.argv[1])


def digests(folder: Path) -> dict:
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in folder.rglob("*.py") if "__pycache__" not in path.parts}


places, changed, only_here, only_installed, missing, files = [], [], [], [], [], 0
for module, tree in (("qaframe", "qaframe"), ("qaframe_plugins", "plugins")):
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        missing.append(module)
        continue
    folder = Path(spec.origin).resolve().parent
    places.append(str(folder))
    theirs, ours = digests(folder), digests(root / tree)
    files += len(ours)
    changed += [f"{tree}/{name}" for name in sorted(theirs.keys() & ours.keys()) if theirs[name] != ours[name]]
    only_here += [f"{tree}/{name}" for name in sorted(ours.keys() - theirs.keys())]
    only_installed += [f"{module}/{name}" for name in sorted(theirs.keys() - ours.keys())]


def few(names: list) -> str:
    return ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")


if missing:
    print(f"qaframe sources: NOT INSTALLED ({', '.join(missing)} not importable): the benchmarks will fail")
elif changed or only_here or only_installed:
    parts = [f"{label} {few(names)}" for label, names in (("changed:", changed), ("only in this checkout:", only_here),
                                                          ("only installed:", only_installed)) if names]
    print(f"qaframe sources: the installed package ({', '.join(places)}) DIFFERS from this checkout, a stale wheel? "
          f"{'; '.join(parts)}")
else:
    editable = all(Path(place).is_relative_to(root.resolve()) for place in places)
    print(f"qaframe sources: the installed package ({'editable, this checkout' if editable else ', '.join(places)}) "
          f"matches this checkout ({files} .py files, sha256)")
EOF
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
echo "gpu.sh: ${SECONDS}s spent setting up; $((deadline - SECONDS))s left of GPU_SH_SECONDS=$budget"
cd benchmarks
failed=0
skipped=()
stage() {  # stage SECONDS SCRIPT ARGS...: one benchmark, stopped after SECONDS or at the deadline, whichever comes first
  local limit=$1 left=$((deadline - SECONDS)) status=0
  shift
  if [ "$left" -lt 30 ]; then
    echo "SKIPPED (${left}s left of GPU_SH_SECONDS=$budget, under 30): $*"
    skipped+=("$1")
    return 0
  fi
  if [ "$left" -lt "$limit" ]; then limit=$left; fi
  timeout -k 5 "$limit" "$python" "$@" || status=$?
  if [ "$status" -ne 0 ]; then
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
      echo "FAILED (stopped at its time limit, ${limit}s): $*" >&2
    else
      echo "FAILED ($status): $*" >&2
    fi
    failed=1
  fi
}
cpu_stage() {  # a stage of CPU work, with the carried numpy first where there is one
  if [ -n "$numpy2" ]; then PYTHONPATH="$numpy2" stage "$@"; else stage "$@"; fi
}
if [ -n "$smoke" ]; then
  cpu_stage 300 featurize.py --examples 300 --repeats 1
  cpu_stage 300 decode.py --examples 300 --repeats 1
  stage 300 train.py --shape tiny --batch-size 8 --warmup 1 --steps 2 --examples 100 --progress-every 1 --profile-steps 1
  stage 300 train.py --shape tiny --batch-size 4 --warmup 1 --steps 1 --examples 60 --precision bf16-mixed --compile-too
  stage 300 train.py --shape tiny --batch-size 4 --warmup 1 --steps 1 --examples 60 --compile --compile-mode reduce-overhead \
    --pad-to-multiple-of 64
  stage 300 predict.py --examples 10
  stage 300 attention.py
else
  # most valuable first; each line prints as soon as it is measured
  base=(--device cuda --shape base --precision bf16-mixed --batch-size 32 --warmup 10 --steps 60 --profile-steps 5
        --examples 3100)
  stage 300 train.py "${base[@]}" --compile-too
  # CUDA graphs: one graph recorded per batch shape, a step's kernels replayed at once; widths in
  # steps of 64 (at most 5 shapes), and warm-up steps enough for each shape to be recorded
  stage 240 train.py "${base[@]}" --compile --compile-mode reduce-overhead --pad-to-multiple-of 64 --warmup 30
  stage 120 predict.py --device cuda --shape base --examples 1000
  cpu_stage 60 decode.py --repeats 2
  cpu_stage 90 featurize.py --repeats 2
  # the progress bar reading the loss (a GPU synchronization) at every step, against every 10 (the default)
  stage 200 train.py "${base[@]}" --compile --progress-every 1
  stage 60 attention.py
fi
echo "gpu.sh: done after ${SECONDS}s of GPU_SH_SECONDS=$budget$([ ${#skipped[@]} -eq 0 ] || echo "; skipped: ${skipped[*]}")"
exit $failed
