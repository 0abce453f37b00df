# One-command entry points (see README). Works from a fresh clone on Debian/Ubuntu.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: setup data quickstart test test-fast mutation reference clean-venv

# Debian's Fashion-MNIST package (IDX files in /usr/share/datasets/fashion-mnist).
data:
	@test -f $(FMNIST)/t10k-images-idx3-ubyte.gz || \
	  ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist)

# torch is pinned and installed first: any looser spec pulls a multi-GB CUDA build.
$(BIN)/autonat: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,demo,e2e,baselines,text]'
	@touch $@

setup: data $(BIN)/autonat

# Main job: class-conditional samples from the shipped Fashion-MNIST model.
quickstart: setup
	$(BIN)/autonat sample --model fashion-mnist --strategy autonat --steps 8 --n 100 --out samples
	@echo "grid: samples/grid.png"

# The test suite (what CI runs): every test, the slow ones included.
test: setup
	$(BIN)/python -m pytest

# The fast subset for the edit-test loop (skips tests marked slow: workflows, DDP, golden tokens, ...).
test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not e2e"

# Rebuild every shipped artefact from scratch (tokenizer, feature net, models, strategies).
reference: setup
	$(BIN)/autonat reference build --work runs/reference

clean-venv:
	rm -rf $(VENV)
