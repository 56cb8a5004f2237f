# Every target installs what it needs first (make install is idempotent: a stamp file).
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install test demo bench-aug bench-load gpu-check clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml scripts/install_system_deps.sh
	bash scripts/install_system_deps.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev,dali,ffcv]'
	$(PY) -m pip check
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

bench-aug: install
	$(PY) -m augpipe.bench --json results/bench-aug.json

bench-load: install
	$(PY) -m loaders.bench --json results/bench-load.json

demo: install
	$(PY) -m ssl_train --data digits --out runs/demo --overwrite

gpu-check:
	bash scripts/gpu_check.sh

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache runs results
