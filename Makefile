# The whole set-up is two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean ray-check docs

# torch is installed first and pinned: 2.13.0 is the CPU build; an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/skulens demo

# Lint and format check first; then the browser tests need Chromium (Debian's: Playwright cannot download
# browsers here). It is installed when missing, and `make test` stops if that fails: the browser tests
# must run, not skip.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CHECKED := src tests benchmarks scripts

# tests/test_scale_engines.py starts a private local Ray (node address 127.0.0.1, 2 CPUs) and compares it with the
# local engine. A missing Ray, or one that cannot start here, stops `make test` (the tests never skip).
ray-check: $(STAMP)
	@$(BIN)/python -c "import ray; from skulens.engines.ray_engine import connect; \
		print('ray', ray.__version__, 'started locally:', connect(num_cpus=2)['CPU'], 'CPUs'); ray.shutdown()" \
		|| { echo "error: Ray (ray[data]) is missing or cannot start a local cluster: pip install 'skulens[ray]'" >&2; exit 1; }

# The API reference, generated from the docstrings (pdoc) into a git-ignored folder; a module that fails to
# import fails the build (and `make test`).
DOCS := docs/api
docs: $(STAMP)
	$(BIN)/python scripts/build_docs.py $(DOCS)

test: $(STAMP) ray-check
	$(BIN)/ruff check $(CHECKED)
	$(BIN)/ruff format --check $(CHECKED)
	$(BIN)/python scripts/build_docs.py $(DOCS)
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| { echo "error: Chromium is needed by the browser tests and could not be installed (apt-get install chromium)" >&2; exit 1; }
	@command -v chromium >/dev/null 2>&1 || { echo "error: chromium is still not on PATH" >&2; exit 1; }
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) runs mlruns .pytest_cache tests/artifacts $(DOCS)
