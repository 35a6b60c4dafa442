# The whole set-up is two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

# torch is installed first and pinned: 2.13.0 is the CPU build; an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/skulens demo

# Lint and format check first; then the browser tests need Chromium (Debian's: Playwright cannot download
# browsers here). It is installed when missing, and `make test` stops if that fails: the browser tests
# must run, not skip.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CHECKED := src tests benchmarks

test: $(STAMP)
	$(BIN)/ruff check $(CHECKED)
	$(BIN)/ruff format --check $(CHECKED)
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| { echo "error: Chromium is needed by the browser tests and could not be installed (apt-get install chromium)" >&2; exit 1; }
	@command -v chromium >/dev/null 2>&1 || { echo "error: chromium is still not on PATH" >&2; exit 1; }
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) runs .pytest_cache tests/artifacts
