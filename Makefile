# Every target installs what it needs first (make install is idempotent: a stamp file).
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install lint docs test test-isa test-fast demo bench-aug bench-load mutate probe gpu-check gpu-check-dry gpu-wheels clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml scripts/install_system_deps.sh
	bash scripts/install_system_deps.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev,dali,ffcv]'
	$(PY) -m pip check
	touch $(STAMP)

# --durations: the slowest tests in every log (the line to watch: at most 6 minutes, quiet 2 cores).
# Then the kernel comparisons again on PyTorch's AVX2 and scalar CPU kernels (ATEN_CPU_CAPABILITY picks
# them on any machine), so that a tolerance that holds here holds on every CPU. test_compile is left
# out there: inductor's generated C++ does not follow ATEN_CPU_CAPABILITY.
ISA_TESTS := tests/augpipe --ignore=tests/augpipe/policy/test_compile.py tests/ssl_train/test_losses.py tests/ssl_train/test_evaluate.py

lint: install
	$(VENV)/bin/ruff check .

# The documentation site from docs/ (the guide, the API reference from docstrings, the architecture,
# the changelog) into docs/_build/html; any warning fails the build.
docs: install
	rm -rf docs/_build
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html

test: install
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q --durations=10
	$(MAKE) --no-print-directory test-isa

test-isa: install
	for isa in avx2 default; do echo "ATEN_CPU_CAPABILITY=$$isa"; \
	  ATEN_CPU_CAPABILITY=$$isa $(PY) -m pytest -q -p no:cacheprovider $(ISA_TESTS) || exit 1; done

# Day-to-day: every test not marked slow (training runs, compilation, FFCV/DALI epochs): under 2 minutes
test-fast: install
	$(PY) -m pytest -q -m "not slow" --durations=5

# Benchmarks write to an untracked folder; committing figures is a choice: make bench-aug BENCH_OUT=benchmarks
BENCH_OUT ?= bench-results

bench-aug: install
	mkdir -p $(BENCH_OUT)
	$(PY) -m augpipe.bench --json $(BENCH_OUT)/bench-aug.json

bench-load: install
	mkdir -p $(BENCH_OUT)
	$(PY) -m loaders.bench --json $(BENCH_OUT)/bench-load.json
	$(PY) -m loaders.bench --datasets imagenet-200 --sizes 224 --backends dali,dali-bare --random-crop \
	  --batch-size 50 --repeats 7 --json $(BENCH_OUT)/bench-load-dali.json

# Mutation testing of the core ([mutmut] in setup.cfg): not part of CI (10 min 28 s on 2 cores from scratch).
# Resumable: mutmut remembers finished mutants in mutants/. Prints the per-module score table.
mutate: install
	$(VENV)/bin/mutmut run --max-children 2
	$(PY) scripts/mutation_report.py

# Bad input through the five CLIs, each case in a fresh process (scripts/probe_bad_input.py): 90 s on 2 cores
probe: install
	$(PY) scripts/probe_bad_input.py

demo: install
	$(PY) -m experiments.demo --out runs/demo

# On the lent GPU machine (torch preinstalled, no network): carry .whl (make gpu-wheels here) and
# .gpu-data (a copy of CIFAR-10's JPEG archive, cifar10-jpeg.tar.gz). Writes gpu-check-results/gpu-check.json.
gpu-check:
	bash scripts/gpu_check.sh

# The same script on the CPU at toy sizes (CI runs it): writes gpu-check-results-dry/gpu-check.json.
gpu-check-dry: install
	GPU_CHECK_DRY=1 bash scripts/gpu_check.sh

# What the GPU machine (Python 3.12, torch preinstalled, no network) may lack, as wheels in .whl/:
# Kornia and its Rust core, and what the check itself uses (pytest, tqdm).
gpu-wheels:
	python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
	  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
	  kornia kornia_rs packaging pytest pluggy iniconfig tqdm

clean:
	rm -rf $(VENV) docs/_build *.egg-info .pytest_cache runs results bench-results mutants gpu-check-results gpu-check-results-dry
