# The two commands of the quick start: `make demo` and `make test`. Each sets up .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium
INTEROP := tests/interop/node_modules
MCP_NODE := tests/mcp/node/node_modules

.PHONY: demo test bench lint typecheck clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/interlock demo

test: $(STAMP) | $(INTEROP) $(MCP_NODE) $(CHROMIUM)
	$(BIN)/pytest -q

# Node's `jose`, pinned by the lock file, for the test that verifies a grant in another language.
# Without npm that test skips and says why.
$(INTEROP):
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix tests/interop --no-audit --no-fund; \
	else echo "npm not found: tests/e2e/test_jwt_interop.py will be skipped"; fi

# The official MCP TypeScript SDK, pinned by the lock file, for the test that drives the MCP gateway with a
# client nobody here wrote. Without npm that test skips and says why.
$(MCP_NODE):
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix tests/mcp/node --no-audit --no-fund; \
	else echo "npm not found: tests/mcp/test_gateway_node.py will be skipped"; fi

# Debian's Chromium for the browser test (Playwright drives it; no browser is downloaded). Without root
# this only says what to run, and tests/browser skips and says why.
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y chromium; \
	else echo "chromium not found: run 'sudo apt-get install -y chromium' or tests/browser will be skipped"; fi

bench: $(STAMP)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
