#!/usr/bin/env bash
# Device check: every method whose library is here, random weights, built-in images; within 8 minutes.
#
# For a machine with an NVIDIA GPU and no internet. Runs from the repository root (or anywhere: it finds
# it). Prints per method seconds per image and peak GPU memory, the µSAM family run's shared-stage saving,
# and a projection of GPU-hours for the full study (see scripts/device_check.py for what each figure is).
#
# Usage:
#   bash scripts/device_check.sh [--wheels DIR] [--device cuda|cpu] [--quick] [device_check.py options]
#
#   --wheels DIR   install what is missing from DIR, offline:
#                  pip install --no-index --find-links DIR -e "benchmark-root[extras]"
#   --device cpu --quick   the same script on a CPU machine (CI): 128x128 images, one per method,
#                  cheap methods only; a couple of minutes on 2 cores.
#
# Wheels expected in DIR: the packages of the project's extras (pyproject.toml) and their dependencies.
# Build them on a machine with internet, e.g. pip download -d DIR -c constraints.txt torch torchvision ...
#   torch torchvision                        (a CUDA build matching the driver)
#   segment-anything-py                      (amg, and the µSAM methods)
#   micro-sam torch-em python-elf            (ais, apg, apg-bd, apg-ref)
#   sam2 hydra-core iopath                   (sam2-amg)
#   sam3 triton psutil open-clip-torch huggingface-hub   (sam3; needs CUDA)
#   cellpose (>=4,<5)                        (cellpose-sam; cellpose3 runs in its own env)
#   cellSAM kornia dask dask-image scikit-learn requests (cellsam; cellSAM is built from its git commit)
#   instanseg-torch seaborn                  (instanseg)
#   stardist csbdeep tensorflow              (stardist)
# The core (numpy, scipy, scikit-image, tifffile, pydantic, rich, ...) must be installed already.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WHEELS=""
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --wheels) WHEELS="${2:?--wheels needs a folder}"; shift 2 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
PYTHON="${PYTHON:-python3}"
if [[ -n "$WHEELS" ]]; then
  [[ -d "$WHEELS" ]] || { echo "--wheels $WHEELS is not a folder" >&2; exit 2; }
  # each extra's requirements (read from pyproject.toml; git URLs by package name), one extra at a time,
  # so one that cannot resolve offline is reported and its methods are skipped, not the whole check
  for extra in sam musam sam2 sam3 cellpose instanseg stardist cellsam; do
    mapfile -t reqs < <("$PYTHON" - "$REPO/pyproject.toml" "$extra" <<'PY'
import sys, tomllib
for req in tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"][sys.argv[2]]:
    print(req.split(" @ ")[0])
PY
)
    "$PYTHON" -m pip install -q --no-index --find-links "$WHEELS" "${reqs[@]}" \
      || echo "wheels: extra '$extra' not installable from $WHEELS (its methods will be skipped)"
  done
fi
export PYTHONPATH="$REPO/benchmark${PYTHONPATH:+:$PYTHONPATH}"
# TensorFlow (stardist) would otherwise take the whole GPU memory from the torch methods that follow it
export TF_FORCE_GPU_ALLOW_GROWTH=true TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore}"
# 8 minutes in all; device_check.py plans for 7 (--total 420) and skips what does not fit.
exec timeout 480 "$PYTHON" "$REPO/scripts/device_check.py" "${ARGS[@]+"${ARGS[@]}"}"
