# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates the project virtualenv (.venv) when it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch's CPU build first, so the requirement below installs no multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/arcray demo --out demo-out

# Debian's chromium for the night page's browser test (skipped, with its reason, where it cannot be installed).
browser:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
		apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; } || \
		echo "make: chromium could not be installed: the browser test will be skipped"

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV)
