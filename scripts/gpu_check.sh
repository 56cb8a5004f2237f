#!/usr/bin/env bash
# make gpu-check: on the lent CUDA machine (python with torch preinstalled, no network), install
# the wheels carried in .whl/ (kornia; `make gpu-wheels` fetches them here), then run
# scripts/gpu_check.py. make gpu-check-dry runs the same script on the CPU (GPU_CHECK_DRY=1).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${GPU_CHECK_OUT:-gpu-check-results}
py=${PY:-python3}
[ -x .venv/bin/python ] && py=.venv/bin/python
if [ "${GPU_CHECK_DRY:-0}" = 1 ]; then
  exec "$py" scripts/gpu_check.py --dry --out "$out-dry"
fi
if ls .whl/*.whl >/dev/null 2>&1; then  # only what is missing: never replace the machine's torch
  for whl in .whl/*.whl; do
    name=$(basename "$whl" | cut -d- -f1)
    "$py" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$name') is None)" 2>/dev/null \
      || "$py" -m pip install -q --no-index --no-deps "$whl" || echo "warning: $whl did not install"
  done
fi
cifar=${CIFAR_TGZ:-}
for c in .gpu-data/cifar10-jpeg.tar.gz "${AUGPIPE_CIFAR10:-}"; do
  [ -z "$cifar" ] && [ -f "$c" ] && cifar=$c
done
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
timeout "${GPU_CHECK_TIMEOUT_S:-470}" "$py" scripts/gpu_check.py --out "$out" --cifar "$cifar" 2>&1 | tee "$out.log"
exit "${PIPESTATUS[0]}"
