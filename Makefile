# Two commands do everything (see README): `make reproduce` and `make test`.
# Each sets up what it needs first, idempotently: a virtual environment with torch and nml,
# registered as the Jupyter kernel `nml`, the Debian Fashion-MNIST and chromium packages and the
# offline assets (checked by sha256). `make lab` opens the notebooks in JupyterLab.

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.14.1 torchvision==0.29.1
PROFILE ?= cpu
BIN := $(VENV)/bin
STAMP := $(VENV)/.nml-installed
KERNEL := $(VENV)/share/jupyter/kernels/nml/kernel.json

.PHONY: reproduce test setup assets browser lab lint smoke bench clean-runs

reproduce: setup ## run every notebook on the cpu profile; figures and tables in figures/cpu/
	$(BIN)/nml run --profile $(PROFILE)

test: setup ## ruff, the import contracts (pyproject.toml), then the whole test suite (including a smoke run of every notebook, and every notebook run in JupyterLab in headless Chromium)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadfile

setup: $(STAMP) $(KERNEL) assets browser

lab: setup ## JupyterLab on notebooks/, running them on the project's kernel `nml`
	$(BIN)/jupyter lab notebooks/ $$([ "$$(id -u)" = 0 ] && echo --allow-root)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The venv as the Jupyter kernel `nml` (what the notebooks' metadata name), inside the venv
# (--sys-prefix), where the venv's jupyter and papermill find it.
$(KERNEL): $(STAMP)
	$(BIN)/python -m ipykernel install --sys-prefix --name nml --display-name "Python (nml)"

assets: $(STAMP) ## fetch (or verify) the offline datasets and models the profiles use
	$(BIN)/nml assets fetch

# The Debian chromium package, which the browser test (tests/test_browser.py) drives through
# Playwright; no browser is downloaded from elsewhere (never `playwright install`). Skipped when
# chromium is on PATH; installed with apt-get as root or with non-interactive sudo; otherwise a
# message (not an error: `make reproduce` does not need a browser, the browser test says so).
browser:
	@if command -v chromium >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	else echo "make setup: chromium is missing and this is neither root nor non-interactive sudo:" \
	  "run \`sudo apt-get install chromium\` for the browser test of \`make test\`" >&2; exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "make setup: chromium is missing and there is no apt-get: install chromium (on PATH as" \
	  "\`chromium\`) for the browser test of \`make test\`" >&2; exit 0; fi; \
	echo "installing the Debian package chromium (for the browser test)"; \
	apt="$$sudo env DEBIAN_FRONTEND=noninteractive apt-get -q"; \
	$$apt install -y chromium >/dev/null || { $$apt update >/dev/null && $$apt install -y chromium >/dev/null; } || \
	  echo "make setup: \`apt-get install chromium\` failed: the browser test of \`make test\` needs it" >&2

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

smoke: setup ## every notebook on tiny data, in about a minute
	$(BIN)/nml run --profile smoke

clean-runs:
	rm -rf runs/
