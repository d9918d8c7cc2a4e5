# Each target installs what is missing first (a virtual environment in .venv), so a fresh machine
# needs only Python 3.11 and `make`. Conda users: `make test VENV=$CONDA_PREFIX` uses their env.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.enlighten-installed
DEMO_DIR ?= outputs/demo/$(shell date +%Y-%m-%d_%H-%M-%S)

.PHONY: install demo test test-slow bench ddp clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## demo: the ENP strategies on the bundled digits (3 seeds): the table with p-values, and the figure
demo: $(STAMP)
	$(PY) train.py -m experiment=demo hydra.sweep.dir=$(DEMO_DIR)
	$(PY) scripts/make_tables.py $(DEMO_DIR) --baseline strategy=mixup --out $(DEMO_DIR)/table.md
	$(PY) scripts/plot_tradeoff.py $(DEMO_DIR) --out $(DEMO_DIR)/tradeoff

## test: the default suite (under 10 minutes on 2 CPU cores)
test: $(STAMP)
	$(PY) -m pytest

## test-slow: only the tests marked slow
test-slow: $(STAMP)
	$(PY) -m pytest -m slow

## bench: speed and memory ratios (scripts/bench.py); `make bench BENCH_ARGS=--quick` takes about a minute
bench: $(STAMP)
	$(PY) scripts/bench.py $(BENCH_ARGS)

## ddp: one run data-parallel through torchrun: `make ddp NPROC=8 ARGS="experiment=paper/imagenet_vit_tiny"`;
## the default is the CPU check, 2 processes (gloo) on 10% of MNIST
NPROC ?= 2
ARGS ?= dataset=mnist model=cnn dataset.fraction=0.1 trainer.epochs=2 phase=accuracy logger=none
ddp: $(STAMP)
	$(PY) -m torch.distributed.run --standalone --nproc_per_node=$(NPROC) train.py $(ARGS)

clean:
	rm -rf outputs multirun .pytest_cache
