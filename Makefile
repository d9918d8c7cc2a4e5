# Each target installs what is missing first (a virtual environment in .venv), so a fresh machine
# needs only Python 3.11 and `make`. Conda users: `make test VENV=$CONDA_PREFIX` uses their env.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.enlighten-installed
DEMO_DIR ?= outputs/demo/$(shell date +%Y-%m-%d_%H-%M-%S)

.PHONY: install data demo claims claims-report claims-smoke test test-unit test-slow test-slurm lint bench ddp gpu-data gpu-wheels gpu-check clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing into $(VENV) (torch and its CUDA libraries: a few minutes the first time)..."
	$(PY) -m pip install --progress-bar on -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## demo: the ENP strategies on the bundled digits (3 seeds): the table with p-values, and the figure
demo: $(STAMP)
	$(PY) train.py -m experiment=demo hydra.sweep.dir=$(DEMO_DIR)
	$(PY) scripts/make_tables.py $(DEMO_DIR) --baseline strategy=mixup --out $(DEMO_DIR)/table.md
	$(PY) scripts/plot_tradeoff.py $(DEMO_DIR) --out $(DEMO_DIR)/tradeoff

## claims: the paper's four claims on MNIST under the plan of docs/claims.md: stage 1 (the regime map, about an
## hour on 2 CPU cores), then stage 2 (the claims sweeps: hours), into CLAIMS_DIR; then docs/results/claims.md, its
## figures and its data file. Re-running skips completed jobs. CLAIMS_JOBS runs side by side, one thread each.
## claims-report: the report again from the committed data file (seconds). claims-smoke: both stages tiny (< 5 min).
SHARED_DATA ?= $(or $(ENLIGHTEN_DATA_DIR),../shared/data)
CLAIMS_DIR ?= outputs/claims
CLAIMS_OUT ?= docs/results/claims.md
CLAIMS_ARGS ?=
CLAIMS_JOBS ?= $(shell nproc 2>/dev/null || echo 1)
claims: $(STAMP)
	$(PY) scripts/claims.py --stage regime --jobs $(CLAIMS_JOBS) --dir $(CLAIMS_DIR) --out $(CLAIMS_OUT) \
		paths.data_dir=$(SHARED_DATA) $(CLAIMS_ARGS)
	$(PY) scripts/claims.py --jobs $(CLAIMS_JOBS) --dir $(CLAIMS_DIR) --out $(CLAIMS_OUT) paths.data_dir=$(SHARED_DATA) $(CLAIMS_ARGS)

claims-report: $(STAMP)
	$(PY) scripts/claims.py --report-only --out $(CLAIMS_OUT)

claims-smoke: $(STAMP)
	$(PY) scripts/claims.py --profile smoke --stage regime --jobs $(CLAIMS_JOBS) --dir outputs/claims-smoke \
		--out outputs/claims-smoke/claims.md paths.data_dir=$(SHARED_DATA) $(CLAIMS_ARGS)
	$(PY) scripts/claims.py --profile smoke --jobs $(CLAIMS_JOBS) --dir outputs/claims-smoke \
		--out outputs/claims-smoke/claims.md paths.data_dir=$(SHARED_DATA) $(CLAIMS_ARGS)

## test: the default suite on every core (pytest-xdist, at most TEST_WORKERS processes; tests/conftest.py
## shares the cores among them), with the slowest tests listed. One test: $(PY) -m pytest tests/test_x.py -k name
TEST_WORKERS ?= 4
test: $(STAMP)
	$(PY) -m pytest -n auto --maxprocesses $(TEST_WORKERS) --dist worksteal --durations 10

## lint: ruff's checks and its formatting (configured in pyproject.toml); `$(PY) -m ruff format .` formats
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

## test-unit: the inner loop, without the tests marked e2e (runs, processes, whole grids): under a minute
test-unit: $(STAMP)
	$(PY) -m pytest -m "not e2e and not slow and not slurm" -n auto --maxprocesses $(TEST_WORKERS) --durations 5

## test-slow: only the tests marked slow
test-slow: $(STAMP)
	$(PY) -m pytest -m slow

## data: fetch and check the data a command's jobs need, before queueing them (on the login node):
## `make data ARGS="experiment=tradeoff paths.data_dir=/shared/data"` (scripts/prepare_data.py)
data: $(STAMP)
	$(PY) scripts/prepare_data.py $(ARGS)

## test-slurm: the tests marked slurm, on a real SLURM scheduler started on this machine for them and
## stopped after (scripts/slurm_local.sh; as root: it installs slurm-wlm and munge with apt if missing)
test-slurm: $(STAMP)
	scripts/slurm_local.sh up
	SLURM_CONF=$$(scripts/slurm_local.sh conf) $(PY) -m pytest -m slurm; status=$$?; scripts/slurm_local.sh down; exit $$status

## bench: speed and memory ratios (scripts/bench.py); `make bench BENCH_ARGS=--quick` takes about a minute
bench: $(STAMP)
	$(PY) scripts/bench.py $(BENCH_ARGS)

## ddp: one run data-parallel through torchrun: `make ddp NPROC=8 ARGS="experiment=paper/imagenet_vit_tiny"`;
## the default is the CPU check, 2 processes (gloo) on 10% of MNIST
NPROC ?= 2
ARGS ?= dataset=mnist model=cnn dataset.fraction=0.1 trainer.epochs=2 phase=accuracy logger=none
ddp: $(STAMP)
	$(PY) -m torch.distributed.run --standalone --nproc_per_node=$(NPROC) train.py $(ARGS)

## gpu-data: copy the CIFAR-10 copy (npz and prepare.py) into data/cifar10, an ignored folder that can travel to a GPU machine
gpu-data:
	mkdir -p data/cifar10
	cp $(SHARED_DATA)/cifar10/cifar10_jpeg75.npz $(SHARED_DATA)/cifar10/prepare.py data/cifar10/

## gpu-wheels: wheels (in .whl, ignored) of what a bare PyTorch image lacks to run gpu-check: hydra, omegaconf, antlr4
gpu-wheels: $(STAMP)
	$(PY) -m pip wheel --quiet --no-deps -w .whl $$($(PY) -c "from importlib.metadata import version as v; \
		print(' '.join(f'{n}=={v(n)}' for n in ('hydra-core', 'omegaconf', 'antlr4-python3-runtime')))")

## gpu-check: on one NVIDIA GPU, <= 8 min: the `gpu` tests, the bench's throughput section and 3 epochs of the
## CIFAR-10 ResNet-18 recipe; writes gpu_check.json and gpu_check.log to GPU_CHECK_OUT. Refuses without CUDA.
## On a machine with its own PyTorch and no network: `make gpu-check GPU_PY=python3` (docs/performance.md).
GPU_PY ?= $(PY)
GPU_CHECK_OUT ?= outputs/gpu-check/$(shell date +%Y-%m-%d_%H-%M-%S)
gpu-check: $(if $(filter $(PY),$(GPU_PY)),$(STAMP))
	$(GPU_PY) scripts/gpu_check.py --out $(GPU_CHECK_OUT)

clean:
	rm -rf outputs multirun .pytest_cache
