# The README's two commands: `make demo` (the main job) and `make test` (the whole test suite).
# Both create .venv if it is missing and install the project into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
RUN    ?= runs/demo

PROFILE ?= demo

.PHONY: demo test install clean-venv notebooks reproduce test-notebooks docs-notebooks

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m ulib pipeline --profile demo --run $(RUN)

test: $(STAMP)
	$(BIN)/python -m pytest

clean-venv:
	rm -rf $(VENV)

# Notebooks: regenerate them from notebooks/build_notebooks.py; run them all with papermill (PROFILE=demo|smoke|...)
notebooks: $(STAMP)
	$(BIN)/python notebooks/build_notebooks.py

reproduce: $(STAMP)
	$(BIN)/python -m ulib reproduce --profile $(PROFILE)

test-notebooks: $(STAMP)
	$(BIN)/python -m pytest tests/test_notebooks.py

# Executed copies (demo profile) for readers who want figures without running anything
docs-notebooks: $(STAMP)
	$(BIN)/python -m ulib reproduce --profile demo --run runs/docs
	mkdir -p docs/notebooks && cp runs/docs/notebooks/*.ipynb runs/docs/results/*.png runs/docs/results/*.md docs/notebooks/
