# Two commands on a fresh machine: `make train` (the demo) and `make test` (the suite).
# Each sets up the virtual environment $(VENV) when it is missing, broken or older than setup.cfg /
# pyproject.toml (pinned torch, then the package with its extras), and skips that when nothing changed.
#   make train ARGS="--epochs 5"      extra flags for tools/train.py
#   make test ARGS="-x tests/detloss/test_loss.py"   extra pytest arguments
#   make test VENV=/tmp/ci-venv       another environment (CI points this at a fresh one)
#   make docs                          the API reference of detloss -> build/api/index.html (pdoc: one package, no
#                                      site config, reads our Google sections and reST roles; tools/api_docs.py
#                                      fails on a docstring reference that names nothing or an undocumented export)
#   make lint                          ruff, then mypy on the packages in pyproject.toml's [tool.mypy] files
#   make dist                          wheel + sdist -> dist/ (python -m build)

PYTHON ?= python3
VENV ?= .venv
ARGS ?=
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
EXTRAS ?= dev,eval,train,export,docs

PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp

.PHONY: setup train test lint docs dist

setup: $(STAMP)

# the stamp records a finished set-up; a change to the package metadata makes it stale
$(STAMP): setup.cfg pyproject.toml
	@$(PY) -c "import sys" 2>/dev/null || $(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	@touch $(STAMP)

train: $(STAMP)
	$(PY) tools/train.py --label-smoothing 0.1 $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check detloss fileio models data tools tests examples experiments
	$(VENV)/bin/mypy

docs: $(STAMP)
	$(PY) tools/api_docs.py --out build/api

dist: $(STAMP)
	$(PY) -m build --outdir dist
