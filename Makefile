# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONUNBUFFERED := 1
# Matplotlib must never try to open a window (CI, ssh sessions).
export MPLBACKEND := Agg

.PHONY: install demo test test-slow bench lint docs clean

install: $(STAMP)

# Re-installs only when the dependency list changes; `make install` is a no-op otherwise.
$(STAMP): pyproject.toml scripts/ensure_blas.sh Makefile
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 ($(PYTHON)) is required"; exit 1; }
	bash scripts/ensure_blas.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,dask,jax,nutpie]"
	touch $(STAMP)

demo: install
	$(PY) -m bayesgmm demo --out report.html

test: install
	@bash scripts/ensure_chromium.sh
	$(PY) -m pytest tests bayesgmm -q

test-slow: install
	$(PY) -m pytest tests -q -m slow

bench: install
	$(PY) benchmarks/bench_em.py
	$(PY) benchmarks/bench_nuts.py
	$(PY) benchmarks/bench_summaries.py

# Builds the site (notebooks executed in fast mode); any warning is an error.
docs: install
	rm -rf docs/_build docs/generated
	env -u MPLBACKEND $(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@echo "Documentation: docs/_build/html/index.html"

lint: install
	$(VENV)/bin/ruff check bayesgmm tests benchmarks notebooks docs/conf.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache docs/_build docs/generated docs/notebooks docs/jupyter_execute
