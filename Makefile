# Two commands do everything (see README): `make reproduce` and `make test`.
# Each sets up what it needs first, idempotently: a virtual environment with torch and nml,
# the Debian Fashion-MNIST package and the offline assets (checked by sha256).

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.14.1 torchvision==0.29.1
PROFILE ?= cpu
BIN := $(VENV)/bin
STAMP := $(VENV)/.nml-installed

.PHONY: reproduce test setup assets lint smoke bench clean-runs

reproduce: setup ## run every notebook on the cpu profile; figures and tables in figures/cpu/
	$(BIN)/nml run --profile $(PROFILE)

test: setup ## ruff, the import contracts (pyproject.toml), then the whole test suite (including a smoke run of every notebook)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadfile

setup: $(STAMP) assets

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

assets: $(STAMP) ## fetch (or verify) the offline datasets and models the profiles use
	$(BIN)/nml assets fetch

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

smoke: setup ## every notebook on tiny data, in about a minute
	$(BIN)/nml run --profile smoke

clean-runs:
	rm -rf runs/
