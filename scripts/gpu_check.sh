#!/usr/bin/env bash
# make gpu-check: on a machine with CUDA, run the GPU-marked tests and the GPU benchmarks, and
# write every result (JSON + log) into one folder. Uses .venv when present, else the system python
# (the lent GPU machine has torch preinstalled; kornia can arrive as a wheel, DALI cannot).
set -uo pipefail
out=${GPU_CHECK_OUT:-gpu-check-results}
py=${PY:-python3}
[ -x .venv/bin/python ] && py=.venv/bin/python
mkdir -p "$out"
log="$out/gpu-check.log"
: > "$log"
run() { echo "+ $*" | tee -a "$log"; "$@" 2>&1 | tee -a "$log"; return "${PIPESTATUS[0]}"; }

export PYTHONUNBUFFERED=1
run "$py" -c "import torch; assert torch.cuda.is_available(), 'no CUDA'; print(torch.__version__, torch.cuda.get_device_name(0))" || exit 1
status=0
run "$py" -m pytest -q -m gpu tests --junitxml="$out/gpu-tests.xml" || status=1
run "$py" -m augpipe.bench --device cuda --sizes 32,224 --json "$out/bench-aug-cuda.json" || status=1
if [ -f ssl_train/__main__.py ] && [ "${GPU_CHECK_TRAIN:-1}" = 1 ]; then
  run "$py" -m ssl_train.gpu_bench --out "$out/train" || status=1
fi
echo "results in $out (status $status)" | tee -a "$log"
exit $status
