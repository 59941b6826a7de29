# nn-parity build/test entry points (GNU make).
# The venv is (re)installed only when pyproject.toml or constraints.txt change:
# the stamp file $(STAMP) records the last successful install.

PYTHON ?= python3.11
VENV = .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed

PYTEST_ARGS ?=
STUDY_ARGS ?=
TOX_ARGS ?= -m fast

.DEFAULT_GOAL := help
.PHONY: help test test-all test-portability test-portability-all study bench lint docs tox clean distclean

help:
	@echo "make test       fast test suite: pytest -m 'not slow' -n 2 (extra args: PYTEST_ARGS=...);"
	@echo "                hypothesis derandomized: the same examples every run"
	@echo "make test-all   full test suite, slow training runs included (PYTEST_ARGS=...);"
	@echo "                hypothesis profile 'thorough': 300 fresh random examples per test"
	@echo "make test-portability      the fast suite once per kernel/thread variant, 3 variants"
	@echo "                           (ATEN_CPU_CAPABILITY, OPENBLAS_CORETYPE,"
	@echo "                           NPY_DISABLE_CPU_FEATURES, NN_PARITY_THREADS; tests/portability.py)"
	@echo "make test-portability-all  the same over all 24 combinations (slow)"
	@echo "make study      run 'nn-parity study' (extra args: STUDY_ARGS=...)"
	@echo "make bench      run 'nn-parity bench'"
	@echo "make lint       ruff check layerspec reference torch_impl parity tests, then mypy"
	@echo "                on the installed layout (tests/typecheck.py); fails if either fails"
	@echo "make docs       the API reference from the docstrings (pdoc, the docs extra) → build/docs/"
	@echo "make tox        run tox (default TOX_ARGS='-m fast'; TOX_ARGS='-m matrix' for numpy x torch)"
	@echo "make clean      remove report/ and caches (keeps .venv)"
	@echo "make distclean  clean, and remove .venv too"
	@echo "make help       this list"

# Create the venv with Python 3.11 and install torch (CPU wheel on disk, pinned in
# constraints.txt) before the project, so the torch>=2.13 range never pulls a CUDA build.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' >/dev/null 2>&1 || \
		{ echo "Python 3.11 required: set PYTHON=/path/to/python3.11 ('$(PYTHON)' is missing or not 3.11)" >&2; exit 1; }
	@test -x $(BIN)/python || { echo "$(PYTHON) -m venv $(VENV)"; $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -c constraints.txt torch==2.13.0
	# the test extra brings pytest and every other extra (nn-parity[all]): the study's and
	# the tests' packages; a plain `pip install nn-parity` brings only the core (README, Install)
	$(BIN)/pip install -c constraints.txt -e '.[test]'
	$(BIN)/pip install --no-deps -c constraints.txt numpy-ml
	touch $@

# -n 2: the fast suite on both cores of a CI machine (pytest-xdist, in the test extra); each
# worker keeps the thread settings of tests/conftest.py, so verdicts do not change
test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q -n 2 $(PYTEST_ARGS)

test-all: $(STAMP)
	HYPOTHESIS_PROFILE=thorough $(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-portability: $(STAMP)
	$(BIN)/python tests/portability.py -- $(PYTEST_ARGS)

test-portability-all: $(STAMP)
	$(BIN)/python tests/portability.py --all -- $(PYTEST_ARGS)

study: $(STAMP)
	$(BIN)/nn-parity study $(STUDY_ARGS)

bench: $(STAMP)
	$(BIN)/nn-parity bench

# Both checks run even when the first fails, so one `make lint` shows everything; it fails if
# either does. mypy's configuration (packages, options) is pyproject's [tool.mypy], the same
# as `tox -e type` and the CI type job use. The tools come from pyproject's `lint` extra.
lint: $(STAMP)
	@{ $(BIN)/python -m ruff --version && $(BIN)/python -m mypy --version; } >/dev/null 2>&1 || \
		$(BIN)/pip install -c constraints.txt -e '.[lint]'
	@status=0; \
	echo "$(BIN)/python -m ruff check layerspec reference torch_impl parity tests"; \
	$(BIN)/python -m ruff check layerspec reference torch_impl parity tests || status=1; \
	$(BIN)/python tests/typecheck.py || status=1; \
	exit $$status

# The public API (parity.__all__), the twins fixture, the Literal types and the extras table,
# rendered from their docstrings; the rest of parity is internal. Not committed (build/).
DOCS_MODULES = parity parity.pytest_plugin parity.types parity.extras \
	'!parity\.(?!pytest_plugin|types|extras)'

docs: $(STAMP)
	@$(BIN)/python -m pdoc --version >/dev/null 2>&1 || \
		$(BIN)/pip install -c constraints.txt -e '.[docs]'
	rm -rf build/docs
	$(BIN)/python -m pdoc --docformat restructuredtext -o build/docs $(DOCS_MODULES)
	@echo "API reference: build/docs/index.html"

tox: $(STAMP)
	@$(BIN)/python -m tox --version >/dev/null 2>&1 || $(BIN)/pip install -c constraints.txt tox
	$(BIN)/python -m tox $(TOX_ARGS)

clean:
	rm -rf report build .pytest_cache .hypothesis .ruff_cache .mypy_cache
	find . -path ./$(VENV) -prune -o -path ./.tox -prune -o -path ./.git -prune -o \
		-type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
