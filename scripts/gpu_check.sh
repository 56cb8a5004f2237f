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
# ResNet-18 SimCLR on CIFAR-10 (goal: >= 85% kNN in <= 10 minutes on one H100). The archive
# must travel with the tree: copy ../shared/data/cifar10-jpeg.tar.gz to .gpu-data/ (ignored by git)
# and name .gpu-data in the device tool's carry.
cifar=${CIFAR_TGZ:-}
for c in .gpu-data/cifar10-jpeg.tar.gz ../shared/data/cifar10-jpeg.tar.gz; do
  [ -z "$cifar" ] && [ -f "$c" ] && cifar=$c
done
if [ -n "$cifar" ] && [ "${GPU_CHECK_TRAIN:-1}" = 1 ]; then
  data=$("$py" -c "from experiments.runner import resolve_data; from loaders.datasets import cache_dir; print(resolve_data('$cifar', cache_dir() / 'experiments-data'))")
  run timeout "${GPU_TRAIN_TIMEOUT_S:-660}" "$py" -m ssl_train --data "$data" --backbone resnet18 --method simclr \
      --policy simclr --batch-size 512 --epochs "${GPU_TRAIN_EPOCHS:-30}" --optimizer lars --lr 1.0 \
      --weight-decay 1e-6 --warmup-epochs 2 --proj-hidden 2048 --temperature 0.2 --device cuda \
      --precision bf16 --channels-last --num-workers 12 --eval-every 10 --no-progress \
      --out "$out/train-resnet18" --overwrite || status=1
else
  echo "skip training check: no CIFAR-10 archive (.gpu-data/cifar10-jpeg.tar.gz)" | tee -a "$log"
fi
echo "results in $out (status $status)" | tee -a "$log"
exit $status
