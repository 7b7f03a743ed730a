# The README's two commands: `make demo` (the main job) and `make test` (the linter, then the whole test suite).
# Both create .venv if it is missing and install the project into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
RUN    ?= runs/demo

PROFILE ?= demo

.PHONY: demo test install clean-venv notebooks reproduce test-notebooks docs-notebooks docs browser-deps test-browser \
        gpu-check gpu-deps tutorial

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m ulib pipeline --profile demo --run $(RUN)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# The ready-trained model that ships in ulib/assets/pretrained/tutorial/ (float16 EMA weights + SHA-256 manifest):
# the demo's data, VQGAN and sampler trained for hours (profile `tutorial`, about 1 h 10 min on 2 CPU cores), then
# packed. The notebooks load it with pretrained="tutorial"; `python -m ulib pretrained install` puts it in a run.
tutorial: $(STAMP)
	$(BIN)/python -m ulib pipeline --profile tutorial --run runs/tutorial
	$(BIN)/python -m ulib pretrained pack tutorial --run runs/tutorial

# The real-browser check of the widget playground (tests/app/test_browser.py): JupyterLab + headless Chromium.
# browser-deps installs Debian's chromium (Playwright drives it; nothing is downloaded by Playwright itself).
SUDO ?= $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser-deps:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { $(SUDO) apt-get update && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver; }
	chromium --version 2>/dev/null

test-browser: $(STAMP)
	$(BIN)/python -m pytest -m browser tests/app/test_browser.py

clean-venv:
	rm -rf $(VENV)

# Notebooks: each .ipynb is paired with a percent-format .py (jupytext); after editing either outside JupyterLab
# (which keeps both in sync itself), `make notebooks` syncs the other. Run them all with papermill: make reproduce
notebooks: $(STAMP)
	$(BIN)/jupytext --sync notebooks/[0-9][0-9]_*.ipynb

reproduce: $(STAMP)
	$(BIN)/python -m ulib reproduce --profile $(PROFILE)

test-notebooks: $(STAMP)
	$(BIN)/python -m pytest tests/test_notebooks.py

# Executed copies (demo profile) for readers who want figures without running anything. Reuses the run of
# `make demo` (RUN=runs/demo) when it exists, so only what it lacks is trained.
docs-notebooks: $(STAMP)
	$(BIN)/python -m ulib reproduce --profile demo --run $(RUN) --export docs/notebooks

# The tutorial site (ulib/app/site.py, mkdocs.yml): docs/notebooks' executed copies as static pages in site/, figures
# embedded, equations typeset by MathJax from the site itself (nothing executed, nothing fetched). Open site/index.html.
docs: $(STAMP)
	$(BIN)/python -m ulib.app.site --out site

# Every CUDA path once at the paper's sizes (ulib/app/gpu_check.py): throughput and peak memory as JSON, ~5 min on
# one H200. tests/app/test_gpu_check.py runs the same script with --tiny on the CPU.
GPU_CHECK_JSON ?= runs/gpu_check.json
gpu-check: $(STAMP)
	$(BIN)/python -m ulib gpu-check --json $(GPU_CHECK_JSON)

# For a GPU machine with its own Python and CUDA torch but no internet (README: GPUs): the core's packages that such
# a machine may lack, installed here into $(GPU_DEPS) (ignored by git) to copy there beside the repository:
# tqdm (pure Python) and Pillow (a binary wheel, for GPU_PYTHON on x86-64 Linux). There:
#   PYTHONPATH=.gpu-deps python3 -m ulib gpu-check --json docs/gpu-check-DATE-CARD.json
GPU_DEPS   ?= .gpu-deps
GPU_PYTHON ?= 3.10
gpu-deps:
	rm -rf $(GPU_DEPS)
	$(PYTHON) -m pip install --target $(GPU_DEPS) --no-deps --only-binary=:all: --python-version $(GPU_PYTHON) \
	    --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 'tqdm>=4.66' 'pillow>=10.0'
